"""Parquet file(s) whose image column holds encoded PNG/JPEG bytes or pixel arrays."""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from gan_core.config import DataConfig
from gan_core.data import ArrayData, DataError, caption_problem
from gan_core.data.bad_samples import BadSamples
from gan_core.data.image_decode import decode_image

_DEFAULT_LABEL = DataConfig().label_column  # tolerated when absent; a named column is not


def load_parquet(path: str, cfg: DataConfig, bad: BadSamples | None = None) -> ArrayData:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).rglob("*.parquet")
                       if not any(s.startswith(".") for s in p.relative_to(path).parts))
        if not files:
            raise DataError(f"{path}: no .parquet files in this directory")
    else:
        files = [path]
    xs, ys, texts, kinds = [], [], [], set()
    cap = cfg.caption_column
    want_labels = None  # decided by the first file, then required of every other one
    for f in files:
        try:
            names = pq.read_schema(f).names
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{f}: not a readable parquet file ({e})") from None
        if cfg.image_column not in names:
            raise DataError(f"{f}: no image column '{cfg.image_column}'; columns: {', '.join(names)}")
        lab = cfg.label_column
        if lab is not None and lab not in names and (lab != _DEFAULT_LABEL or want_labels):
            raise DataError(f"{f}: no label column '{lab}'; columns: {', '.join(names)}")
        if cap is not None and cap not in names:
            raise DataError(f"{f}: no caption column '{cap}'; columns: {', '.join(names)}")
        has_labels = lab is not None and lab in names
        want_labels = has_labels if want_labels is None else want_labels
        cols = [cfg.image_column] + ([lab] if has_labels else []) + ([cap] if cap else [])
        table = pq.read_table(f, columns=cols)
        if table.num_rows == 0:
            continue
        x, kind, keep = _images(table.column(cfg.image_column).combine_chunks(), f, cfg,
                                bad or BadSamples())
        if not len(x):
            continue
        if xs and x.shape[1:] != xs[0].shape[1:]:
            raise DataError(f"{f}: row 0 has shape {x.shape[1:]} but {files[0]} has {xs[0].shape[1:]}")
        xs.append(x)
        kinds.add(kind)
        if has_labels:
            ys.append(_labels(table.column(lab).combine_chunks(), f, lab)[keep])
        if cap:
            caps = _captions(table.column(cap).combine_chunks(), f, cap)
            texts += [c for c, k in zip(caps, keep) if k]
    if not xs:
        raise DataError(f"{path}: parquet data has no rows")
    x = np.concatenate(xs)
    y, label_txt = None, "no labels"
    if ys:
        raw = np.concatenate(ys)
        if raw.dtype == object:  # string class names -> index in sorted order
            names_, y = np.unique(raw, return_inverse=True)
            label_txt = f"labels from '{cfg.label_column}' ({len(names_)} names)"
        else:
            y, label_txt = raw.astype(np.int64), f"labels from '{cfg.label_column}'"
    c, h, w = x.shape[1:]
    cap_txt = f", {sum(map(len, texts))} captions from '{cap}'" if cap else ""
    desc = (f"parquet {path}: {len(files)} file(s), {len(x)} images {h}x{w}x{c} from "
            f"'{cfg.image_column}' ({' + '.join(sorted(kinds))}), {label_txt}{cap_txt}")
    return ArrayData(x=x, y=y, kind="image", description=desc, text=texts if cap else None)


def _first_null(arr) -> int:
    return int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])


def _images(col, f: str, cfg: DataConfig, bad: BadSamples):
    """(images, what they were stored as, which rows were kept: a skipped undecodable one is not)."""
    import pyarrow as pa

    name = cfg.image_column
    t = col.type
    if col.null_count:  # before unwrapping: a struct field ignores its parent's nulls
        raise DataError(f"{f}: column '{name}' row {_first_null(col)} is null")
    if pa.types.is_struct(t):  # HuggingFace datasets: {bytes, path}
        fields = [t.field(i).name for i in range(t.num_fields)]
        if "bytes" not in fields:
            raise DataError(f"{f}: column '{name}' is a struct without a 'bytes' field ({', '.join(fields)})")
        col, t = col.field("bytes"), col.type.field("bytes").type
        if col.null_count:
            raise DataError(f"{f}: column '{name}' row {_first_null(col)} has null bytes "
                            "(images stored by path are not supported)")
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        x, keep = _decode(col.to_pylist(), f, name, cfg.channels, bad)
        return x, "encoded images", keep
    every = np.ones(len(col), bool)
    if isinstance(t, pa.FixedShapeTensorType):
        return _pixels(col.to_numpy_ndarray(), f, name, cfg.channels), "pixel arrays", every
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _pixels(_nested(col, f, name), f, name, cfg.channels), "pixel arrays", every
    raise DataError(f"{f}: column '{name}' has type {t}; expected image bytes or pixel lists")


def _decode(blobs: list, f: str, name: str, channels: int, bad: BadSamples):
    """Encoded images -> (the decodable ones of the first one's size, which rows they are)."""
    out, first, n, keep = None, 0, 0, np.zeros(len(blobs), bool)
    for i, b in enumerate(blobs):
        try:
            a = decode_image(io.BytesIO(b), channels)
        except (OSError, ValueError) as e:
            bad.found(DataError(f"{f}: column '{name}' row {i} is not a decodable image ({e})"))
            continue
        if out is None:
            out, first = np.empty((len(blobs), *a.shape), dtype=np.float32), i
        elif a.shape != out.shape[1:]:
            bad.found(DataError(f"{f}: column '{name}' row {i} is {a.shape[2]}x{a.shape[1]} but row "
                                f"{first} is {out.shape[3]}x{out.shape[2]}; all images must match"))
            continue
        out[n], keep[i], n = a, True, n + 1
    return (out[:n] if out is not None else np.empty((0, channels, 1, 1), np.float32)), keep


def _nested(col, f: str, name: str) -> np.ndarray:
    """(nested) list column -> (N, *shape) array; every row must have the same shape."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n, shape, per, cur = len(col), [], 1, col
    while pa.types.is_list(cur.type) or pa.types.is_large_list(cur.type) or pa.types.is_fixed_size_list(cur.type):
        if cur.null_count:
            raise DataError(f"{f}: column '{name}' row {_first_null(cur) // per} holds a null list")
        lengths = pc.list_value_length(cur).to_numpy(zero_copy_only=False)
        odd = np.flatnonzero(lengths != lengths[0])
        if odd.size:  # element index // elements-per-row = row index
            raise DataError(f"{f}: column '{name}' row {odd[0] // per} has a different image size "
                            f"from row 0 (all images must have the same size)")
        shape.append(int(lengths[0]))
        per *= int(lengths[0])
        cur = cur.flatten()
    if cur.null_count:
        raise DataError(f"{f}: column '{name}' row {_first_null(cur) // max(per, 1)} has a null pixel")
    return cur.to_numpy(zero_copy_only=False).reshape(n, *shape)


def _pixels(a: np.ndarray, f: str, name: str, channels: int) -> np.ndarray:
    """Pixel values (N, ...) -> (N, C, H, W) float32 in [0, 1]."""
    n, dims = a.shape[0], a.shape[1:]
    if len(dims) == 1:  # flat H*W*C in HWC order (numpy/PIL convention)
        L = dims[0]
        for c in dict.fromkeys((channels, 1, 3)):
            side = math.isqrt(L // c)
            if L % c == 0 and side * side * c == L:
                a = a.reshape(n, side, side, c).transpose(0, 3, 1, 2)
                break
        else:
            raise DataError(f"{f}: column '{name}' holds {L} values per row: not a square "
                            f"image with 1 or 3 channels")
    elif len(dims) == 2:
        a = a[:, None]
    elif len(dims) == 3 and dims[2] in (1, 3, 4):
        a = a.transpose(0, 3, 1, 2)
    elif not (len(dims) == 3 and dims[0] in (1, 3, 4)):
        raise DataError(f"{f}: column '{name}' rows have shape {dims}; expected HxW, HxWxC or CxHxW")
    a = a[:, :3]  # drop an alpha channel
    if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        if a.size and (a.min() < 0 or a.max() > 255):
            raise DataError(f"{f}: column '{name}' integer pixels outside 0..255")
        return a.astype(np.float32) / 255
    a = a.astype(np.float32)
    bad = ~np.isfinite(a).reshape(n, -1).all(axis=1)
    if bad.any():
        raise DataError(f"{f}: column '{name}' row {int(np.flatnonzero(bad)[0])} has NaN/inf")
    if a.size and (a.min() < 0 or a.max() > 1):
        raise DataError(f"{f}: column '{name}' float pixels must be in [0, 1], got "
                        f"[{a.min():g}, {a.max():g}] (store uint8 for 0..255)")
    return a


def _labels(col, f: str, name: str) -> np.ndarray:
    import pyarrow as pa

    if col.null_count:
        raise DataError(f"{f}: label column '{name}' row {_first_null(col)} is null")
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_integer(col.type):
        return col.to_numpy().astype(np.int64)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return np.array(col.to_pylist(), dtype=object)
    raise DataError(f"{f}: label column '{name}' has type {col.type}; expected integers or strings")


def _captions(col, f: str, name: str) -> list[list[str]]:
    """A string or list<string> column -> one list of captions per row."""
    import pyarrow as pa

    t = col.type
    if col.null_count:
        raise DataError(f"{f}: caption column '{name}' row {_first_null(col)} is null")
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        rows = [[c] for c in col.to_pylist()]
    elif ((pa.types.is_list(t) or pa.types.is_large_list(t))
          and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type))):
        rows = col.to_pylist()  # a null caption inside a list is caught below as a non-string
    else:
        raise DataError(f"{f}: caption column '{name}' has type {t}; expected string or list<string>")
    for i, caps in enumerate(rows):
        problem = caption_problem(caps)
        if problem:
            raise DataError(f"{f}: caption column '{name}' row {i} {problem}")
    return rows
