"""Data sources: every loader returns one in-memory ArrayData that the Ray pipeline wraps.

Loaders are imported lazily so that e.g. a toy run never imports pyarrow, PIL or sklearn.
"""
from __future__ import annotations

import os
import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from gan_core.config import DATA_SOURCES, PATH_SOURCES, TOY_SOURCES, Config, ConfigError, DataConfig

__all__ = ["DataError", "ArrayData", "caption_problem", "caption_tokens", "check_data", "load_source"]


class DataError(ValueError):
    """Bad data; the message names the file (or column) at fault."""


@dataclass
class ArrayData:
    x: np.ndarray  # float32. images: (N, C, H, W) in [0, 1] at native size; points: (N, D)
    y: Optional[np.ndarray]  # int64 labels or None
    kind: str  # "image" or "points"
    description: str  # one human line saying what was loaded from where
    text: Optional[list[list[str]]] = None  # captions: one or more per sample (text-to-image)
    skipped: list[str] = field(default_factory=list)  # data.on_bad_sample=skip: what was left out
    holdout: Optional[np.ndarray] = None  # random crops: held-out crops for evaluation


def load_source(cfg: DataConfig, seed: int = 0) -> ArrayData:
    """Load cfg.source fully into memory and check it (finite, non-empty, dtypes)."""
    if cfg.random_crops:
        return _crops(cfg, seed)
    from gan_core.data.bad_samples import BadSamples

    src, bad = cfg.source, BadSamples(cfg.on_bad_sample == "skip")
    if src in TOY_SOURCES:
        from gan_core.data.toys import load_toy
        data = load_toy(src, cfg.num_samples, seed)
    elif src == "sklearn_digits":
        from gan_core.data.digits import load_digits
        data = load_digits()
    elif src == "sklearn_photos":
        from gan_core.data.photos import load_photos
        data = load_photos()
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
            data = load_image_folder(path, cfg.channels, bad)
        elif src == "jsonl":
            from gan_core.data.captions_jsonl import load_captions_jsonl
            data = load_captions_jsonl(path, cfg.channels, bad)
        else:
            from gan_core.data.parquet import load_parquet
            data = load_parquet(path, cfg, bad)
    else:
        raise ConfigError("data.source", f"unknown value {src!r}; choose one of {', '.join(DATA_SOURCES)}")
    if cfg.pad_to and data.kind == "image":
        from gan_core.data.transforms import pad_images
        data.x = pad_images(data.x, cfg.pad_to)
        data.description += f", zero-padded to {cfg.pad_to}x{cfg.pad_to}"
    if bad.skipped:
        data = dataclasses.replace(data, skipped=bad.skipped, description=(
            f"{data.description}; {len(bad.skipped)} bad samples skipped"))
    if cfg.captions_per_image:
        from gan_core.data.captions import captioned
        data = captioned(_checked(data), seed, cfg.captions_per_image)
    if cfg.clusters:
        from gan_core.data.clusters import channel_cluster_labels, cluster_labels
        data = _checked(data)
        if cfg.cluster_channels:
            y, how = channel_cluster_labels(data.x, cfg.clusters, seed), " per channel"
        else:
            y, how = cluster_labels(data.x, cfg.clusters, seed), ""
        data = dataclasses.replace(data, y=y, description=(
            f"{data.description}, labelled by {cfg.clusters} spectral clusters{how}"))
    return _checked(data)


def _crops(cfg: DataConfig, seed: int) -> ArrayData:
    """data.random_crops: crops of the source's images, which may differ in size in a folder."""
    from gan_core.data.crops import crop_data

    if cfg.source == "image_folder":
        from gan_core.data.image_folder import load_image_list
        images, names, desc = load_image_list(os.path.expanduser(cfg.path), cfg.channels)
    else:
        whole = load_source(DataConfig(**{**cfg.__dict__, "random_crops": False}), seed)
        if whole.kind != "image":
            raise ConfigError("data.random_crops", f"source '{cfg.source}' has no images to crop")
        images, desc = list(whole.x), whole.description
        names = [f"image {i} of {desc}" for i in range(len(images))]
    data = crop_data(images, names, desc, cfg.image_size, cfg.num_samples, cfg.holdout_crops, seed)
    return ArrayData(**{**_checked(data).__dict__, "holdout": data.holdout})


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
    text = data.text
    if text is not None:
        if len(text) != len(x):
            raise DataError(f"{len(text)} caption lists for {len(x)} samples ({data.description})")
        for i, caps in enumerate(text):
            problem = caption_problem(caps)
            if problem:
                raise DataError(f"sample {i} {problem} ({data.description})")
        text = [list(caps) for caps in text]
    return ArrayData(x=x, y=y, kind=data.kind, description=data.description, text=text,
                     skipped=data.skipped)


def caption_problem(caps) -> Optional[str]:
    """What is wrong with one sample's captions, or None. One rule for every loader; each
    loader puts its own location (file, line, row) in front."""
    if isinstance(caps, str) or not isinstance(caps, (list, tuple)):
        return f"has {type(caps).__name__} captions; expected a list of strings"
    if not caps:
        return "has no caption"
    for k, c in enumerate(caps):
        if not isinstance(c, str):
            return f"caption {k} is a {type(c).__name__}, not a string"
        if not c.strip():
            return f"caption {k} is empty"
    return None


def check_data(cfg: Config, data: ArrayData, prefix: str = "") -> None:
    """What a run needs of its loaded data beyond the config itself: a full batch on every
    worker, labels in range for a class-conditional GAN, captions that tokenize for a
    text-conditional one. ConfigError names the `prefix`ed key."""
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
    if cfg.model.text_max_len:
        caption_tokens(cfg, data, prefix)


def caption_tokens(cfg: Config, data: ArrayData, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """A text-conditional run's captions as (N, K, model.text_max_len) tokens and (N,) counts
    (`gan_core.text.encode_per_sample`). Over-long captions: ConfigError naming the `prefix`ed
    model.text_max_len; other bad captions: DataError naming the sample."""
    from gan_core.text import encode_per_sample

    key = f"{prefix}model.text_max_len"
    if data.text is None:
        raise ConfigError(key, f"a text-to-image GAN needs captions, and the data has none "
                               f"({data.description})")
    try:
        return encode_per_sample(data.text, cfg.model.text_max_len)
    except ValueError as e:
        if "more than max_len" in str(e):
            raise ConfigError(key, f"{e} ({data.description})") from None
        raise DataError(f"{e} ({data.description})") from None


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
