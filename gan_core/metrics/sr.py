"""Paired reconstruction metrics for super-resolution: PSNR and SSIM (torchmetrics.functional).

Images are (N, C, H, W) in [-1, 1], so the data range is 2. PSNR is computed per image and
averaged over images (the usual SR convention), in float64; identical images give inf.
SSIM uses torchmetrics' defaults (Gaussian window, sigma 1.5, 11x11) on all channels.
"""
from __future__ import annotations

import torch

from .features import as_images

__all__ = ["psnr", "ssim"]


def _pair(pred, target) -> tuple[torch.Tensor, torch.Tensor]:
    p, t = as_images(pred, "pred").double(), as_images(target, "target").double()
    if p.shape != t.shape:
        raise ValueError(f"pred and target differ in shape: {tuple(p.shape)} vs {tuple(t.shape)}")
    if p.shape[0] == 0:
        raise ValueError("pred and target are empty")
    return p, t


def psnr(pred, target, data_range: float = 2.0) -> dict:
    """Mean over images of 10 log10(data_range^2 / MSE_image) -> {"psnr"}."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    p, t = _pair(pred, target)
    per_image = peak_signal_noise_ratio(p, t, data_range=float(data_range), reduction="none",
                                        dim=(1, 2, 3))
    return {"psnr": float(per_image.mean())}


def ssim(pred, target, data_range: float = 2.0, sigma: float = 1.5) -> dict:
    """Mean SSIM -> {"ssim"}; images need H, W > 3.5 * sigma + 0.5 (6 at the default sigma)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    p, t = _pair(pred, target)
    pad = int(3.5 * sigma + 0.5)
    if min(p.shape[2:]) <= pad:
        raise ValueError(f"SSIM with sigma={sigma} needs images larger than {pad}x{pad}, "
                         f"got {tuple(p.shape[2:])}")
    val = structural_similarity_index_measure(p, t, data_range=float(data_range), sigma=sigma)
    return {"ssim": float(val)}
