"""Sampling from a generator and the quality figures logged during and after training."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import TOY_SOURCES
from .data.toys import toy_modes
from .data.transforms import to_unit_range
from .metrics import evaluate
from .viz import save_image_grid, toy_plot


@torch.no_grad()
def sample(G: nn.Module, n: int, seed: int, device=None, batch: int = 1024) -> np.ndarray:
    """n samples from G in eval mode from a seeded CPU generator (same seed, same samples)."""
    gen = torch.Generator().manual_seed(seed)
    was_training = G.training
    G.eval()
    try:
        chunks = [G(G.sample_z(min(batch, n - i), gen, device)).float().cpu()
                  for i in range(0, n, batch)]
    finally:
        G.train(was_training)
    return torch.cat(chunks).numpy()


def quality_metrics(source: str, samples: np.ndarray) -> dict:
    """The toy metrics for toy sources; images get theirs from the evaluation metrics later."""
    if source not in TOY_SOURCES:
        return {}
    centres, std = toy_modes(source)
    if source == "gaussian_1d":
        return evaluate("gaussian_1d", samples, mean=float(centres[0, 0]), std=std)
    return evaluate("modes", samples, centres=centres, std=std)


def save_figure(source: str, samples: np.ndarray, path: str, title: str = "") -> str:
    """A scatter/density plot for toys, an image grid for images."""
    if samples.ndim == 4:
        return save_image_grid(to_unit_range(samples), path)
    centres, std = toy_modes(source)
    return toy_plot(samples, source, centres, std, path, title=title)
