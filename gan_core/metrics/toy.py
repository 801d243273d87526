"""Metrics for toy 2-D mixtures and the 1-D Gaussian target.

Pure numpy/scipy: no torch, ray or mlflow needed.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import norm

from gan_core.metrics.histogram import kl_to_uniform

__all__ = ["mode_metrics", "gaussian_1d_metrics"]


def _as_2d(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"samples must be (N, D), got shape {x.shape}")
    return x


def mode_metrics(samples: np.ndarray, centres: np.ndarray, std: float) -> dict:
    """Mode coverage / sample quality on a Gaussian mixture (PacGAN, Table 1).

    Each sample is assigned to its nearest centre; it is "high quality" when it
    lies within 3 * std of that centre. A mode is captured when at least one
    high-quality sample is assigned to it.

    Returns dict with ``modes`` (int), ``high_quality`` (share of high-quality
    samples), ``kl`` (sum_k p_k log(p_k K) with p the normalised high-quality
    counts per mode; inf when no sample is high quality) and ``num_samples``.
    """
    x = _as_2d(samples)
    c = _as_2d(centres)
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"samples dim {x.shape[1]} != centres dim {c.shape[1]}")
    n, k = x.shape[0], c.shape[0]
    if n == 0:
        return {"modes": 0, "high_quality": 0.0, "kl": float("inf"), "num_samples": 0}

    d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)  # (N, K)
    nearest = d2.argmin(axis=1)
    nearest_d = np.sqrt(d2[np.arange(n), nearest])
    hq = nearest_d <= 3.0 * float(std)

    counts = np.bincount(nearest[hq], minlength=k).astype(np.float64)
    return {
        "modes": int((counts > 0).sum()),
        "high_quality": float(counts.sum() / n),
        "kl": kl_to_uniform(counts),
        "num_samples": int(n),
    }


def gaussian_1d_metrics(samples: np.ndarray, mean: float, std: float) -> dict:
    """Distance between 1-D samples and the target N(mean, std).

    ``w1`` is the Wasserstein-1 distance between the empirical distribution and
    the target quantized at the quantiles (i + 0.5) / N (mean abs difference of
    sorted samples and target quantiles); it converges to the true W1.
    Non-finite samples make every distance ``inf``.
    """
    x = np.asarray(samples, dtype=np.float64)
    if not (x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1)) or x.size == 0:
        raise ValueError(f"samples must be a non-empty (N,) or (N, 1) array, got {x.shape}")
    x = x.reshape(-1)
    n = x.size
    if not np.all(np.isfinite(x)):  # diverged generator: worst possible score
        inf = float("inf")
        return {"w1": inf, "mean_error": inf, "std_error": inf, "num_samples": int(n)}
    q = norm.ppf((np.arange(n) + 0.5) / n, loc=float(mean), scale=float(std))
    w1 = float(np.mean(np.abs(np.sort(x) - q)))
    return {
        "w1": w1,
        "mean_error": float(abs(x.mean() - mean)),
        "std_error": float(abs(x.std() - std)),
        "num_samples": int(n),
    }
