"""Super-resolution helpers: the low-res input derived from a high-res crop, the bicubic
baseline, tiled upscaling of images of any size, and the PSNR/SSIM evaluation and figure.

Images are (N, C, H, W) in [-1, 1]; the SR generator maps (C, h, w) to (C, h*s, w*s)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data.transforms import to_unit_range
from .metrics import evaluate
from .viz import save_image_grid


def downsample(hr: Tensor, scale: int) -> Tensor:
    """The low-res input: bicubic with antialiasing (as MATLAB's imresize), clipped to [-1, 1]."""
    return F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", antialias=True,
                         align_corners=False).clamp(-1, 1)


def bicubic_upsample(lr: Tensor, scale: int) -> Tensor:
    """The baseline every SR model must beat."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)


@torch.no_grad()
def upscale_tiled(G: nn.Module, lr: Tensor, tile: int, overlap: int) -> Tensor:
    """G(lr) computed on tiles of at most tile x tile input pixels: each tile is run with
    `overlap` pixels of context on every side, and only its centre is kept, so seams vanish once
    the overlap covers G's receptive field. Output on lr's device."""
    if tile <= 2 * overlap:
        raise ValueError(f"tile ({tile}) must exceed twice the overlap ({overlap})")
    n, c, h, w = lr.shape
    if h <= tile and w <= tile:
        return G(lr)
    s, step = G.scale, tile - 2 * overlap
    out = lr.new_empty(n, c, h * s, w * s)
    for y0 in range(0, h, step):
        for x0 in range(0, w, step):
            y1, x1 = min(y0 + step, h), min(x0 + step, w)
            ya, xa = max(y0 - overlap, 0), max(x0 - overlap, 0)
            piece = G(lr[:, :, ya:min(y1 + overlap, h), xa:min(x1 + overlap, w)])
            out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = \
                piece[:, :, (y0 - ya) * s:(y1 - ya) * s, (x0 - xa) * s:(x1 - xa) * s]
    return out


@torch.no_grad()
def super_resolve(G: nn.Module, hr, device=None, batch: int = 64) -> tuple[Tensor, Tensor, Tensor]:
    """(low-res input, bicubic, G's output) for high-res crops `hr` (numpy or tensor), on the
    CPU; G runs in eval mode and gets its mode back."""
    hr = torch.tensor(np.asarray(hr, dtype=np.float32))  # a copy: Ray's arrays are read-only
    lr = downsample(hr, G.scale)
    was_training = G.training
    G.eval()
    try:
        sr = torch.cat([G(lr[i:i + batch].to(device)).float().cpu().clamp(-1, 1)
                        for i in range(0, len(lr), batch)])
    finally:
        G.train(was_training)
    return lr, bicubic_upsample(lr, G.scale), sr


def sr_metrics(G: nn.Module, hr, device=None) -> dict:
    """PSNR and SSIM of G's output and of bicubic upsampling against the high-res crops."""
    _, bicubic, sr = super_resolve(G, hr, device)
    hr = torch.tensor(np.asarray(hr, dtype=np.float32))
    return {"psnr": evaluate("psnr", sr, target=hr)["psnr"],
            "ssim": evaluate("ssim", sr, target=hr)["ssim"],
            "psnr_bicubic": evaluate("psnr", bicubic, target=hr)["psnr"],
            "ssim_bicubic": evaluate("ssim", bicubic, target=hr)["ssim"]}


def save_sr_figure(G: nn.Module, hr, path: str, device=None) -> str:
    """One row per crop: low-res (nearest, enlarged) | bicubic | G | high-res."""
    lr, bicubic, sr = super_resolve(G, hr, device)
    nearest = F.interpolate(lr, scale_factor=G.scale, mode="nearest")
    rows = torch.stack([nearest, bicubic, sr, torch.tensor(np.asarray(hr, dtype=np.float32))], 1)
    return save_image_grid(to_unit_range(rows.flatten(0, 1)).numpy(), path, nrow=4)
