"""Random square crops of images of any size, with a deterministic held-out part for evaluation
(super-resolution trains on high-res crops; the low-res input is derived from them on the worker).

Held out: with 10 or more images, every 10th image (indices 9, 19, ...) whole; with fewer (a
few large photographs), the bottom rows of every image, max(crop size, 20% of its height). Training
crops never touch the held-out part; held-out crops are drawn from it with another seed."""
from __future__ import annotations

import math

import numpy as np

from gan_core.data import ArrayData, DataError

HOLDOUT_EVERY = 10  # with this many images or more, every 10th is held out whole
HOLDOUT_ROWS = 0.2  # otherwise this share of each image's rows (at the bottom)


def split_holdout(images: list[np.ndarray], size: int, names: list[str]
                  ) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """(training parts, held-out parts, how) for images (C, H, W)."""
    for a, name in zip(images, names):
        if min(a.shape[1:]) < size:
            raise DataError(f"{name}: {a.shape[2]}x{a.shape[1]} is smaller than the "
                            f"{size}x{size} crops (data.image_size)")
    if len(images) >= HOLDOUT_EVERY:
        held = set(range(HOLDOUT_EVERY - 1, len(images), HOLDOUT_EVERY))
        return ([a for i, a in enumerate(images) if i not in held],
                [a for i, a in enumerate(images) if i in held],
                f"every {HOLDOUT_EVERY}th image ({len(held)} images)")
    train, test = [], []
    for a, name in zip(images, names):
        rows = max(size, math.ceil(HOLDOUT_ROWS * a.shape[1]))
        if a.shape[1] - rows < size:
            raise DataError(f"{name}: {a.shape[1]} rows cannot hold a {size}-row training crop "
                            f"above its {rows} held-out rows; use a smaller data.image_size or "
                            f"{HOLDOUT_EVERY}+ images (then whole images are held out)")
        train.append(a[:, :-rows])
        test.append(a[:, -rows:])
    return train, test, f"the bottom max({size}, {HOLDOUT_ROWS:.0%}) rows of each image"


def random_crops(images: list[np.ndarray], n: int, size: int, seed: int) -> np.ndarray:
    """n crops (n, C, size, size), each from an image drawn uniformly, at a uniform position."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(images), n)
    out = np.empty((n, images[0].shape[0], size, size), dtype=np.float32)
    for k, i in enumerate(which):
        _, h, w = images[i].shape
        top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out[k] = images[i][:, top:top + size, left:left + size]
    return out


def crop_data(images: list[np.ndarray], names: list[str], description: str, size: int, n: int,
              n_holdout: int, seed: int) -> ArrayData:
    """ArrayData of n training crops, with n_holdout held-out crops in `holdout`."""
    if len({a.shape[0] for a in images}) != 1:
        raise DataError(f"images differ in channels ({description})")
    train, test, how = split_holdout(images, size, names)
    x = random_crops(train, n, size, seed)
    held = random_crops(test, n_holdout, size, seed + 1)
    desc = (f"{n} random {size}x{size} crops of {description}; {n_holdout} held-out crops "
            f"from {how}")
    return ArrayData(x=x, y=None, kind="image", description=desc, holdout=held)
