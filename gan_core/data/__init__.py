"""Data sources: every loader returns one in-memory ArrayData that the Ray pipeline wraps.

Loaders are imported lazily so that e.g. a toy run never imports pyarrow, PIL or sklearn.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from gan_core.config import DATA_SOURCES, PATH_SOURCES, TOY_SOURCES, Config, ConfigError, DataConfig

__all__ = ["DataError", "ArrayData", "check_data", "load_source"]


class DataError(ValueError):
    """Bad data; the message names the file (or column) at fault."""


@dataclass
class ArrayData:
    x: np.ndarray  # float32. images: (N, C, H, W) in [0, 1] at native size; points: (N, D)
    y: Optional[np.ndarray]  # int64 labels or None
    kind: str  # "image" or "points"
    description: str  # one human line saying what was loaded from where


def load_source(cfg: DataConfig, seed: int = 0) -> ArrayData:
    """Load cfg.source fully into memory and check it (finite, non-empty, dtypes)."""
    src = cfg.source
    if src in TOY_SOURCES:
        from gan_core.data.toys import load_toy
        data = load_toy(src, cfg.num_samples, seed)
    elif src == "sklearn_digits":
        from gan_core.data.digits import load_digits
        data = load_digits()
    elif src in PATH_SOURCES:
        if not cfg.path:
            raise ConfigError("data.path", f"source '{src}' needs a path")
        path = os.path.expanduser(cfg.path)
        if not os.path.exists(path):
            raise DataError(f"{path}: no such file or directory")
        if src == "mnist":
            from gan_core.data.mnist_idx import load_mnist
            data = load_mnist(path)
        elif src == "stacked_mnist":
            from gan_core.data.stacked_mnist import load_stacked_mnist
            data = load_stacked_mnist(path, cfg.num_samples, seed)
        elif src == "image_folder":
            from gan_core.data.image_folder import load_image_folder
            data = load_image_folder(path, cfg.channels)
        else:
            from gan_core.data.parquet import load_parquet
            data = load_parquet(path, cfg)
    else:
        raise ConfigError("data.source", f"unknown value {src!r}; choose one of {', '.join(DATA_SOURCES)}")
    if cfg.pad_to and data.kind == "image":
        from gan_core.data.transforms import pad_images
        data.x = pad_images(data.x, cfg.pad_to)
        data.description += f", zero-padded to {cfg.pad_to}x{cfg.pad_to}"
    return _checked(data)


def _checked(data: ArrayData) -> ArrayData:
    # One place for the invariants every consumer relies on, whatever the source.
    x = np.ascontiguousarray(data.x, dtype=np.float32)
    if x.shape[0] == 0:
        raise DataError(f"no samples loaded ({data.description})")
    want_ndim = 4 if data.kind == "image" else 2
    if x.ndim != want_ndim:
        raise DataError(f"expected {want_ndim}-D {data.kind} array, got shape {x.shape} ({data.description})")
    if not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0, 0])
        raise DataError(f"non-finite values (NaN/inf) in sample {bad} ({data.description})")
    y = data.y
    if y is not None:
        y = np.asarray(y)
        if y.shape != (len(x),):
            raise DataError(f"{y.shape} labels for {len(x)} samples ({data.description})")
        y = y.astype(np.int64)
    return ArrayData(x=x, y=y, kind=data.kind, description=data.description)


def check_data(cfg: Config, data: ArrayData, prefix: str = "") -> None:
    """What a run needs of its loaded data beyond the config itself: a full batch on every
    worker, and labels in range for a conditional GAN. ConfigError names the `prefix`ed key."""
    per_worker = len(data.x) // cfg.ray.num_workers
    if per_worker < cfg.train.batch_size:
        raise ConfigError(f"{prefix}train.batch_size", f"{cfg.train.batch_size} is more than the "
                          f"{per_worker} samples each of {cfg.ray.num_workers} workers gets")
    if cfg.model.family == "progan":
        _check_growth_fits(cfg, per_worker, prefix)
    k = cfg.model.num_classes
    if k and data.y is None:
        raise ConfigError(f"{prefix}model.num_classes", f"a conditional GAN needs labels, and the "
                          f"data has none ({data.description})")
    if k and (data.y.min() < 0 or data.y.max() >= k):
        raise ConfigError(f"{prefix}model.num_classes", f"{k} classes, but the labels run from "
                          f"{data.y.min()} to {data.y.max()} ({data.description})")


def _check_growth_fits(cfg: Config, per_worker: int, prefix: str) -> None:
    """A run that stops before the final resolution is faded in and stabilised would register a
    generator whose top blocks never trained."""
    from gan_core.progressive import schedule_for

    per_epoch = per_worker // cfg.train.batch_size * cfg.train.batch_size * cfg.ray.num_workers
    need = schedule_for(cfg).growth_images
    if cfg.train.epochs * per_epoch < need:
        raise ConfigError(f"{prefix}train.epochs", f"growing to {cfg.data.image_size}x"
                          f"{cfg.data.image_size} takes {need:,} images (progressive.*); "
                          f"{cfg.train.epochs} epochs of {per_epoch:,} give "
                          f"{cfg.train.epochs * per_epoch:,}: set at least {-(-need // per_epoch)}")
