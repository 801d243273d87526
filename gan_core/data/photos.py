"""The two real photographs that ship with scikit-learn (china.jpg, flower.jpg; 427x640 RGB)."""
from __future__ import annotations

import numpy as np

from gan_core.data import ArrayData


def load_photos() -> ArrayData:
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    x = np.stack([im.transpose(2, 0, 1) for im in photos.images]).astype(np.float32) / 255
    names = ", ".join(f.rsplit("/", 1)[-1] for f in photos.filenames)
    desc = f"sklearn sample photos ({names}; {x.shape[3]}x{x.shape[2]} RGB)"
    return ArrayData(x=x, y=None, kind="image", description=desc)
