"""Metric registry: ``evaluate(name, samples, **kwargs)`` dispatches by name.

Add new metrics with ``register("name")(fn)`` or ``@register("name")``.

Registered: toys ``modes``, ``gaussian_1d``; images (samples = fake images (N, C, H, W) in
[-1, 1], numpy or torch; ``net`` = a feature net with ``features``, ``forward``, ``num_features``,
e.g. ``gan_core.models.evaluator.DigitClassifier``):

- ``fid``  (real=, net=)                       -> {"fid"}
- ``kid``  (real=, net=, subset_size=, subsets=) -> {"kid", "kid_std"}
- ``is``   (net=, splits=)                     -> {"is", "is_std", "is_class_entropy",
                                                   "is_sample_entropy"}
- ``pr``   (real=, net=, k=)                   -> {"precision", "recall"}
- ``swd``  (real=, seed=; no net)              -> {"swd", "swd_<res>"...}, x1e3
- ``psnr`` / ``ssim`` (target=, data_range=2)   -> {"psnr"} / {"ssim"}
- ``cond_acc`` (labels=, net=)                 -> {"cond_acc"}
- ``attr_corr`` (captions=; no net)            -> {"attr_corr_<attribute>"}: digits drawn for
  generated captions (text-to-image)

torchmetrics is imported inside the metric functions, not here.
"""
from __future__ import annotations

from typing import Callable, Dict

from gan_core.metrics.conditional import conditional_accuracy
from gan_core.metrics.features import extract
from gan_core.metrics.fid import fid
from gan_core.metrics.inception_score import inception_score
from gan_core.metrics.kid import kid
from gan_core.metrics.precision_recall import precision_recall, precision_recall_features
from gan_core.metrics.sr import psnr, ssim
from gan_core.metrics.swd import swd
from gan_core.metrics.text import attribute_correlation
from gan_core.metrics.toy import gaussian_1d_metrics, mode_metrics

MetricFn = Callable[..., dict]

METRICS: Dict[str, MetricFn] = {}


def register(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator registering ``fn`` under ``name``; re-registering a name with a different function raises."""

    def deco(fn: MetricFn) -> MetricFn:
        if name in METRICS and METRICS[name] is not fn:
            raise ValueError(f"metric {name!r} already registered")
        METRICS[name] = fn
        return fn

    return deco


register("modes")(mode_metrics)
register("gaussian_1d")(gaussian_1d_metrics)
register("fid")(fid)
register("kid")(kid)
register("is")(inception_score)
register("pr")(precision_recall)
register("swd")(swd)
register("psnr")(psnr)
register("ssim")(ssim)
register("cond_acc")(conditional_accuracy)
register("attr_corr")(attribute_correlation)


def evaluate(name: str, samples, **kwargs) -> dict:
    """Run the metric ``name`` on ``samples``; unknown names raise ValueError."""
    try:
        fn = METRICS[name]
    except KeyError:
        raise ValueError(
            f"unknown metric {name!r}; known metrics: {sorted(METRICS)}"
        ) from None
    return fn(samples, **kwargs)


__all__ = [
    "METRICS", "register", "evaluate", "mode_metrics", "gaussian_1d_metrics",
    "extract", "fid", "kid", "inception_score", "precision_recall", "precision_recall_features",
    "swd", "psnr", "ssim", "conditional_accuracy", "attribute_correlation",
]
