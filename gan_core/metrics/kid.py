"""Kernel inception distance (KID; Binkowski et al. 2018) on feature-net features.

torchmetrics' ``KernelInceptionDistance`` with our feature net as its custom ``feature`` module:
the unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
``subsets`` random subsets of ``subset_size`` images drawn from each set. Seeded: the subsets
come from torch's global RNG, which is forked, seeded and restored around the computation.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .features import RANK_LOCAL, FeatureAdapter, check_images, require_samples
from .fid import update_in_batches

__all__ = ["kid"]


def kid(fake, real, net: nn.Module, subset_size: int | None = None, subsets: int = 100,
        degree: int = 3, coef: float = 1.0, seed: int = 0, batch_size: int = 500) -> dict:
    """KID between ``fake`` and ``real`` images -> {"kid": mean over subsets, "kid_std": std}.

    Both sets need at least ``subset_size`` images (ValueError otherwise). The default
    ``subset_size=None`` takes the paper's 1000, or the smaller set's size when a set is smaller
    (KID is unbiased for any subset size: only its variance changes); it can be slightly
    negative near 0."""
    from torchmetrics.image.kid import KernelInceptionDistance

    xf = check_images(net, fake, "fake images")
    xr = check_images(net, real, "real images")
    if subset_size is None:
        subset_size = min(1000, xf.shape[0], xr.shape[0])
    require_samples(xf.shape[0], subset_size, "KID", "fake images", f"subset_size={subset_size}")
    require_samples(xr.shape[0], subset_size, "KID", "real images", f"subset_size={subset_size}")
    require_samples(subset_size, 2, "KID", "images per subset")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=FeatureAdapter(net, "features"), subsets=subsets,
                                         subset_size=subset_size, degree=degree, coef=float(coef),
                                         normalize=False, **RANK_LOCAL)
    update_in_batches(metric, xr, batch_size, real=True)
    update_in_batches(metric, xf, batch_size, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return {"kid": float(mean), "kid_std": float(std)}
