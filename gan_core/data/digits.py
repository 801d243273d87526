"""scikit-learn's bundled 8x8 digits: tiny, offline, good for smoke runs."""
from __future__ import annotations

import numpy as np

from gan_core.data import ArrayData


def load_digits() -> ArrayData:
    from sklearn.datasets import load_digits as _sk_load

    x, y = _sk_load(return_X_y=True)
    x = (x.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)  # pixel values are 0..16
    desc = f"sklearn digits ({len(x)} images, 8x8, 10 classes)"
    return ArrayData(x=x, y=y.astype(np.int64), kind="image", description=desc)
