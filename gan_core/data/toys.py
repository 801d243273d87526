"""Low-dimensional toy distributions whose modes are known, so mode coverage can be measured."""
from __future__ import annotations

import numpy as np

from gan_core.data import ArrayData, DataError


def toy_modes(source: str) -> tuple[np.ndarray, float]:
    """Mode centres (K, D) and the per-coordinate std of each Gaussian component."""
    if source == "gaussian_1d":
        return np.array([[4.0]]), 0.5
    if source == "ring":
        angles = 2 * np.pi * np.arange(8) / 8
        return np.stack([np.cos(angles), np.sin(angles)], axis=1), 0.01
    if source == "grid":
        v = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        gx, gy = np.meshgrid(v, v, indexing="ij")
        return np.stack([gx.ravel(), gy.ravel()], axis=1), 0.05
    raise DataError(f"unknown toy source {source!r}")


def load_toy(source: str, num_samples: int, seed: int = 0) -> ArrayData:
    centres, std = toy_modes(source)
    rng = np.random.default_rng(seed)
    # Equal mixture: pick a mode per point, then add isotropic noise.
    k = rng.integers(0, len(centres), size=num_samples)
    x = centres[k] + rng.normal(0.0, std, size=(num_samples, centres.shape[1]))
    desc = (f"toy '{source}': {len(centres)} Gaussian mode(s), std {std} "
            f"({num_samples} points, seed {seed})")
    return ArrayData(x=x.astype(np.float32), y=None, kind="points", description=desc)
