"""Sampling from a generator and the quality figures logged during and after training."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import TOY_SOURCES
from .data.toys import toy_modes
from .data.transforms import to_unit_range
from .metrics import evaluate
from .metrics.stacked_mnist import stacked_mnist_modes
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


# what each image metric needs besides the samples
_NEEDS = {"fid": ("real", "net"), "kid": ("real", "net"), "is": ("net",), "pr": ("real", "net"),
          "swd": ("real",), "modes": ("net",)}


def _stacked_modes(samples, net) -> dict:
    """Stacked MNIST: the feature net's digit on each channel names one of 1,000 modes."""
    from .metrics.features import extract

    return stacked_mnist_modes(samples, lambda x: extract(net, x)[1].argmax(1))


def quality_metrics(source: str, samples: np.ndarray, metrics=(), real=None, net=None) -> dict:
    """The toy metrics for toy sources; for images the named metrics (fid, kid, is, pr, swd)
    against `real` reference images with the feature net `net`."""
    if source in TOY_SOURCES:
        centres, std = toy_modes(source)
        if source == "gaussian_1d":
            return evaluate("gaussian_1d", samples, mean=float(centres[0, 0]), std=std)
        return evaluate("modes", samples, centres=centres, std=std)
    given = {"real": real, "net": net}
    out: dict = {}
    for name in metrics:
        kwargs = {k: given[k] for k in _NEEDS[name]}
        out.update(_stacked_modes(samples, **kwargs) if name == "modes" else
                   evaluate(name, samples, **kwargs))
    return out


def save_figure(source: str, samples: np.ndarray, path: str, title: str = "") -> str:
    """A scatter/density plot for toys, an image grid for images."""
    if samples.ndim == 4:
        return save_image_grid(to_unit_range(samples), path)
    centres, std = toy_modes(source)
    return toy_plot(samples, source, centres, std, path, title=title)
