"""MNIST in its original IDX format (raw or gzipped), either split or both."""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from gan_core.data import ArrayData, DataError

_IMAGES, _LABELS = 0x00000803, 0x00000801  # uint8 type byte 0x08; 3 dims / 1 dim
_SPLITS = ("train", "t10k")


def read_idx(path: str, magic: int) -> np.ndarray:
    """Parse one IDX file, checking magic, type byte, dims and payload length."""
    name = os.path.basename(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip by content, not by name: renamed files still work
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: bad gzip data ({e})") from None
    elif name.endswith(".gz"):
        raise DataError(f"{path}: named .gz but is not gzip data")
    what = "images" if magic == _IMAGES else "labels"
    ndim = magic & 0xFF
    if len(raw) < 4:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header")
    got = struct.unpack(">I", raw[:4])[0]
    if got != magic:
        if raw[:2] != b"\0\0":
            hint = "not an IDX file"
        elif raw[2] != 0x08:
            hint = f"type byte 0x{raw[2]:02x} is not 0x08 (uint8)"
        else:
            hint = f"{raw[3]} dims, expected {ndim}"
        raise DataError(f"{path}: wrong magic number 0x{got:08x}, expected 0x{magic:08x} "
                        f"(IDX uint8 {what}): {hint}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    need, have = int(np.prod(dims)), len(raw) - header
    if have != need:
        state = "truncated" if have < need else "has trailing bytes"
        raise DataError(f"{path}: {state}: dims {'x'.join(map(str, dims))} need {need} "
                        f"payload bytes, file has {have}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _candidates(split: str, kind: str) -> list[str]:
    idx = "idx3" if kind == "images" else "idx1"
    # The official names, plus the '.' variant that some mirrors use.
    bases = [f"{split}-{kind}-{idx}-ubyte", f"{split}-{kind}.{idx}-ubyte"]
    return [b + ext for b in bases for ext in ("", ".gz")]


def _find(directory: str, split: str, kind: str):
    for n in _candidates(split, kind):
        p = os.path.join(directory, n)
        if os.path.isfile(p):
            return p
    return None


def load_mnist(path: str) -> ArrayData:
    if os.path.isfile(path):  # a single images file; its labels file is looked up next to it
        directory, name = os.path.split(path)
        pairs = [(path, _sibling_labels(directory, name))]
    else:
        directory = path
        pairs = [(img, _find(path, s, "labels")) for s in _SPLITS
                 if (img := _find(path, s, "images"))]
        if not pairs:
            looked = ", ".join(n for s in _SPLITS for n in _candidates(s, "images"))
            present = ", ".join(sorted(os.listdir(path))[:20]) or "nothing"
            raise DataError(f"{path}: no MNIST IDX images file; looked for {looked}; "
                            f"the directory holds: {present}")
    xs, ys, parts = [], [], []
    for img, lab in pairs:
        x = read_idx(img, _IMAGES)
        xs.append(x)
        if lab is not None:
            y = read_idx(lab, _LABELS)
            if len(y) != len(x):
                raise DataError(f"{lab} has {len(y)} labels but {img} has {len(x)} images")
            ys.append(y)
        parts.append(os.path.basename(img) + (f" + {os.path.basename(lab)}" if lab else " (no labels)"))
    shapes = {a.shape[1:] for a in xs}
    if len(shapes) > 1:
        raise DataError(f"{directory}: splits have different image sizes {sorted(shapes)}")
    x = np.concatenate(xs)[:, None].astype(np.float32) / 255  # (N, 1, H, W) in [0, 1]
    y = np.concatenate(ys).astype(np.int64) if len(ys) == len(xs) else None  # all splits or none
    h, w = x.shape[2:]
    desc = f"MNIST IDX in {directory}: {'; '.join(parts)} ({len(x)} images, {h}x{w})"
    if os.path.isdir(path) and len(pairs) < len(_SPLITS):
        desc += "; no training split found" if not _find(path, "train", "images") else "; no test split found"
    if y is None and ys:
        desc += "; labels dropped because a split has none"
    return ArrayData(x=x, y=y, kind="image", description=desc)


def _sibling_labels(directory: str, name: str):
    for a, b in (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1")):
        if a in name:
            stem = name.replace(a, b).removesuffix(".gz")
            for n in (stem, stem + ".gz"):
                if os.path.isfile(os.path.join(directory, n)):
                    return os.path.join(directory, n)
    return None
