"""Stacked MNIST (Metz et al. 2017; Lin et al. 2018): three MNIST digits drawn independently as
the R, G and B channels of one image, so the data has 10^3 = 1,000 modes (one per digit triple).
Used to count the modes a generator captures (gan_core.metrics.stacked_mnist)."""
from __future__ import annotations

import numpy as np

from gan_core.data import ArrayData, DataError
from gan_core.data.mnist_idx import load_mnist


def load_stacked_mnist(path: str, num_samples: int, seed: int = 0) -> ArrayData:
    """`num_samples` images (N, 3, H, W) in [0, 1] built from the MNIST IDX files at `path`;
    label = 100 * digit_R + 10 * digit_G + digit_B (int64, 0..999). The three source images of
    each sample are drawn uniformly with replacement, independently per channel, seeded."""
    if num_samples <= 0:
        raise ValueError(f"num_samples must be > 0, got {num_samples}")
    mnist = load_mnist(path)
    if mnist.y is None:
        raise DataError(f"{path}: stacked MNIST needs digit labels, but {mnist.description}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(mnist.x), size=(num_samples, 3))  # columns: R, G, B
    x = mnist.x[idx, 0]  # (N, 3, H, W): channel k of sample i is MNIST image idx[i, k]
    digits = mnist.y[idx]  # (N, 3)
    y = (100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]).astype(np.int64)
    h, w = x.shape[2:]
    desc = (f"stacked MNIST: {num_samples} samples of 3 digits as RGB ({h}x{w}, seed {seed}) "
            f"from {mnist.description}")
    return ArrayData(x=x, y=y, kind="image", description=desc)
