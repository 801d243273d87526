"""Sources -> a Ray Dataset of preprocessed samples in column "x", sharded to workers by Ray Train."""
from __future__ import annotations

from functools import partial

import numpy as np
import ray.data

from gan_core.data import ArrayData
from gan_core.data.transforms import preprocess_images, preprocess_points


def _prep_images(batch: dict, image_size: int, channels: int) -> dict:
    return {"x": preprocess_images(batch["data"], image_size, channels)}


def _prep_points(batch: dict) -> dict:
    return {"x": preprocess_points(batch["data"])}


def to_ray_dataset(data: ArrayData, image_size: int, channels: int, seed: int) -> ray.data.Dataset:
    """Preprocessing runs in `map_batches`; the small result is materialised once so every epoch
    streams blocks from the object store instead of recomputing them. Rows are permuted once
    (seeded): sources come sorted by class, and each worker's shard is a contiguous slice."""
    fn = partial(_prep_images, image_size=image_size, channels=channels) \
        if data.kind == "image" else _prep_points
    x = data.x[np.random.default_rng(seed).permutation(len(data.x))]
    return ray.data.from_numpy(x).map_batches(fn, batch_format="numpy").materialize()
