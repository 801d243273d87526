"""Inception score (Salimans et al. 2016) with the feature net's classifier in place of Inception.

torchmetrics' ``InceptionScore`` with our net as its custom ``feature`` module, which must return
logits: torchmetrics applies softmax / log_softmax to the module's output. ``normalize`` stays
False: with True, torchmetrics turns the images into uint8 (x * 255) even for a custom module.
IS = exp(E_x KL(p(y|x) || p(y))), per split; 1 = one class for everything, K = K classes,
each predicted with certainty, equally often.

Over the whole set, log IS = H(y) - E_x H(y|x): the entropy of the mean class distribution
(ln K when the classes come equally often) less the mean entropy of each sample's (0 when every
sample is read with certainty). Both are reported, so a low IS says which it lacks: diversity
over classes, or samples the classifier can read.
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from .features import RANK_LOCAL, FeatureAdapter, check_images, require_samples
from .fid import update_in_batches

__all__ = ["inception_score"]


def inception_score(fake, net: nn.Module, splits: int = 10, seed: int = 0,
                    batch_size: int = 500) -> dict:
    """IS of ``fake`` images -> {"is": mean over splits, "is_std": std over splits,
    "is_class_entropy": H(y), "is_sample_entropy": E_x H(y|x)} (the two in nats, over all images).

    Needs >= ``splits`` images. torchmetrics shuffles (seeded here) and splits with
    ``torch.chunk``, i.e. into ceil(N / splits)-sized chunks: use N divisible by ``splits`` to
    get exactly ``splits`` chunks. With ``splits=1`` the std is reported as 0."""
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.utilities.data import dim_zero_cat

    x = check_images(net, fake, "fake images")
    require_samples(x.shape[0], splits, "IS", "images", f"splits={splits}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = InceptionScore(feature=FeatureAdapter(net, "logits"), splits=splits, normalize=False,
                                **RANK_LOCAL)
    update_in_batches(metric, x, batch_size)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*degrees of freedom.*")  # std of 1 split
        torch.manual_seed(seed)
        mean, std = metric.compute()
    std = float(std)
    p = dim_zero_cat(metric.features).double().softmax(dim=1)
    entropy = torch.special.entr  # -p log p, 0 at p = 0; NaN (a diverged G) stays NaN
    return {"is": float(mean), "is_std": 0.0 if math.isnan(std) and splits == 1 else std,
            "is_class_entropy": float(entropy(p.mean(dim=0)).sum()),
            "is_sample_entropy": float(entropy(p).sum(dim=1).mean())}
