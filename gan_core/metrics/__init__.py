"""Metric registry: ``evaluate(name, samples, **kwargs)`` dispatches by name.

Add new metrics with ``register("name")(fn)`` or ``@register("name")``.
"""
from __future__ import annotations

from typing import Callable, Dict

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


def evaluate(name: str, samples, **kwargs) -> dict:
    """Run the metric ``name`` on ``samples``; unknown names raise ValueError."""
    try:
        fn = METRICS[name]
    except KeyError:
        raise ValueError(
            f"unknown metric {name!r}; known metrics: {sorted(METRICS)}"
        ) from None
    return fn(samples, **kwargs)


__all__ = ["METRICS", "register", "evaluate", "mode_metrics", "gaussian_1d_metrics"]
