"""Frechet distance between Gaussians fitted to feature-net features (FID; Heusel et al. 2017).

Computed by torchmetrics' ``FrechetInceptionDistance`` with our feature net as its custom
``feature`` module (see ``features.FeatureAdapter``): float images in [-1, 1] go to the net as they
are, features come back as float64, so the running sums and the result are double precision.
"""
from __future__ import annotations

from torch import nn

from .features import RANK_LOCAL, FeatureAdapter, check_images, require_samples, warn_if

__all__ = ["fid", "update_in_batches"]

MIN_SAMPLES = 2  # a covariance needs two samples per set


def update_in_batches(metric, x, batch_size: int, **kw) -> None:
    """``metric.update(chunk, **kw)`` over ``batch_size``-image chunks of ``x``."""
    for i in range(0, x.shape[0], batch_size):
        metric.update(x[i:i + batch_size], **kw)


def fid(fake, real, net: nn.Module, batch_size: int = 500) -> dict:
    """FID between ``fake`` and ``real`` images (numpy or torch (N, C, H, W) in [-1, 1]) in the
    feature space of ``net``: ||mu_f - mu_r||^2 + tr(S_f + S_r - 2 (S_f S_r)^(1/2)).

    Needs >= 2 images per set (ValueError below); warns when a set has fewer images than the
    net has features (the covariance is then singular and FID is biased upward)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    xf = check_images(net, fake, "fake images")
    xr = check_images(net, real, "real images")
    require_samples(xf.shape[0], MIN_SAMPLES, "FID", "fake images")
    require_samples(xr.shape[0], MIN_SAMPLES, "FID", "real images")
    nf = int(net.num_features)
    warn_if(min(xf.shape[0], xr.shape[0]) < nf,
            f"FID with {min(xf.shape[0], xr.shape[0])} images per set < {nf} features: "
            "singular covariance, biased estimate")
    metric = FrechetInceptionDistance(feature=FeatureAdapter(net, "features"), normalize=False,
                                      **RANK_LOCAL)
    update_in_batches(metric, xr, batch_size, real=True)
    update_in_batches(metric, xf, batch_size, real=False)
    return {"fid": float(metric.compute())}
