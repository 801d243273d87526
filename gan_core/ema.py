"""Exponential moving average of G, with the decay set by a half-life counted in images."""
from __future__ import annotations

import torch
from torch import nn


def ema_beta(batch_images: int, half_life_images: float) -> float:
    """Decay per step such that an update's weight halves after `half_life_images` images."""
    return 0.5 ** (batch_images / half_life_images) if half_life_images > 0 else 0.0


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float) -> None:
    # one multi-tensor kernel per list instead of one launch per tensor
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - beta)
    buffers = list(ema.buffers())
    if buffers:
        torch._foreach_copy_(buffers, list(model.buffers()))
