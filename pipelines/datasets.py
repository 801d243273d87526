"""Sources -> a Ray Dataset of preprocessed samples in column "x" (and int64 labels in "y" for a
conditional GAN), sharded to workers by Ray Train."""
from __future__ import annotations

from functools import partial

import numpy as np
import pyarrow as pa
import ray.data
from ray.data.extensions import ArrowTensorArray

from gan_core.config import Config
from gan_core.data import ArrayData
from gan_core.data.transforms import preprocess_images, preprocess_points


def _prep_images(batch: dict, image_size: int, channels: int) -> dict:
    return {"x": preprocess_images(batch["data"], image_size, channels), **_labels(batch)}


def _prep_points(batch: dict) -> dict:
    return {"x": preprocess_points(batch["data"]), **_labels(batch)}


def _labels(batch: dict) -> dict:
    return {"y": batch["label"]} if "label" in batch else {}


def to_ray_dataset(data: ArrayData, cfg: Config) -> ray.data.Dataset:
    """Preprocessing runs in `map_batches`; the small result is materialised once so every epoch
    streams blocks from the object store instead of recomputing them. Rows are permuted once
    (seeded): sources come sorted by class, and each worker's shard is a contiguous slice.
    A conditional GAN's labels travel along as column "y" (checked by `check_data`)."""
    fn = partial(_prep_images, image_size=cfg.data.image_size, channels=cfg.data.channels) \
        if data.kind == "image" else _prep_points
    order = np.random.default_rng(cfg.seed).permutation(len(data.x))
    if cfg.model.num_classes:
        table = pa.table({"data": ArrowTensorArray.from_numpy(data.x[order]),
                          "label": pa.array(data.y[order])})
        ds = ray.data.from_arrow(table)
    else:
        ds = ray.data.from_numpy(data.x[order])
    return ds.map_batches(fn, batch_format="numpy").materialize()
