"""Sources -> a Ray Dataset of preprocessed samples in column "x", sharded to workers by Ray
Train. A class-conditional GAN's int64 labels travel in "y"; a text-conditional GAN's captions
as (K, L) tokens in "y" with their count in "n_captions" (the worker picks one per step)."""
from __future__ import annotations

from functools import partial

import numpy as np
import pyarrow as pa
import ray.data
from ray.data.extensions import ArrowTensorArray

from gan_core.config import Config
from gan_core.data import ArrayData, caption_tokens
from gan_core.data.transforms import preprocess_images, preprocess_points


def _prep_images(batch: dict, image_size: int, channels: int) -> dict:
    return {"x": preprocess_images(batch["data"], image_size, channels), **_conditions(batch)}


def _prep_points(batch: dict) -> dict:
    return {"x": preprocess_points(batch["data"]), **_conditions(batch)}


def _conditions(batch: dict) -> dict:
    return {k: batch[k] for k in ("y", "n_captions") if k in batch}


def to_ray_dataset(data: ArrayData, cfg: Config) -> ray.data.Dataset:
    """Preprocessing runs in `map_batches`; the small result is materialised once so every epoch
    streams blocks from the object store instead of recomputing them. Rows are permuted once
    (seeded): sources come sorted by class, and each worker's shard is a contiguous slice.
    Conditions travel along (checked by `check_data`)."""
    fn = partial(_prep_images, image_size=cfg.data.image_size, channels=cfg.data.channels) \
        if data.kind == "image" else _prep_points
    order = np.random.default_rng(cfg.seed).permutation(len(data.x))
    columns = {}
    if cfg.model.num_classes:
        columns["y"] = pa.array(data.y[order])
    elif cfg.model.text_max_len:
        tokens, counts = caption_tokens(cfg, data)
        columns["y"] = ArrowTensorArray.from_numpy(tokens[order])
        columns["n_captions"] = pa.array(counts[order])
    if columns:
        ds = ray.data.from_arrow(pa.table({"data": ArrowTensorArray.from_numpy(data.x[order]), **columns}))
    else:
        ds = ray.data.from_numpy(data.x[order])
    return ds.map_batches(fn, batch_format="numpy").materialize()
