"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al. 2020).

With a small training set (MNIST's 10k test split, 1,797 bundled digits) D memorises the reals
over hundreds of epochs and G's signal degrades. Transforming every image D sees, real and fake
alike, with the same random family of differentiable ops keeps D from memorising, while G still
gets gradients through the transform. Each sample draws its own transform from torch's global
RNG on the batch's device, which the worker seeds per (seed, rank, epoch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

TRANSLATION_RATIO = 0.125  # shift up to 1/8 of the side, zero-filled (the paper's default)
CUTOUT_RATIO = 0.5  # one zeroed square of half the side


def diff_augment(x: Tensor, policies: list[str]) -> Tensor:
    """(N, C, H, W) images, each policy in order, each sample drawn independently."""
    for name in policies:
        x = _TRANSFORMS[name](x)
    return x


def translation(x: Tensor) -> Tensor:
    n, _, h, w = x.shape
    sy, sx = max(1, round(h * TRANSLATION_RATIO)), max(1, round(w * TRANSLATION_RATIO))
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy + sy  # indices into the padded image
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx + sx
    padded = F.pad(x, [sx, sx, sy, sy])
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous(memory_format=_format(x))


def cutout(x: Tensor) -> Tensor:
    n, _, h, w = x.shape
    ch, cw = max(1, round(h * CUTOUT_RATIO)), max(1, round(w * CUTOUT_RATIO))
    # the square's top-left corner; it may hang over the border, as in the paper
    top = torch.randint(-(ch // 2), h - ch // 2, (n, 1, 1), device=x.device)
    left = torch.randint(-(cw // 2), w - cw // 2, (n, 1, 1), device=x.device)
    r = torch.arange(h, device=x.device).view(1, h, 1)
    c = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (r >= top) & (r < top + ch) & (c >= left) & (c < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def _format(x: Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


_TRANSFORMS = {"translation": translation, "cutout": cutout}
