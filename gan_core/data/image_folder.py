"""A directory tree of image files; top-level subdirectories, if any, are the classes."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from gan_core.data import ArrayData, DataError
from gan_core.data.image_decode import decode_image

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def list_images(root: Path) -> list[Path]:
    # Hidden entries (.ipynb_checkpoints, macOS ._ files) are never data.
    return sorted(p for p in root.rglob("*")
                  if p.suffix.lower() in EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def load_image_folder(path: str, channels: int) -> ArrayData:
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{path}: not a directory")
    files = list_images(root)
    if not files:
        raise DataError(f"{path}: no images ({', '.join(EXTENSIONS)}) found")
    # Headers first: a size mismatch is reported before any pixels are decoded.
    sizes = []
    for f in files:
        try:
            with Image.open(f) as im:
                sizes.append(im.size)
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{f}: unreadable image ({e})") from None
    majority, _ = Counter(sizes).most_common(1)[0]
    for f, s in zip(files, sizes):
        if s != majority:
            raise DataError(f"{f}: size {s[0]}x{s[1]} differs from the majority size "
                            f"{majority[0]}x{majority[1]}; all images must be the same size")
    mode = "L" if channels == 1 else "RGB"
    w, h = majority
    x = np.empty((len(files), channels, h, w), dtype=np.float32)
    for i, f in enumerate(files):
        try:
            x[i] = decode_image(f, channels)
        except (OSError, ValueError) as e:  # truncated/corrupt pixel data
            raise DataError(f"{f}: cannot decode image ({e})") from None
    rel = [f.relative_to(root).parts for f in files]
    classes = sorted({r[0] for r in rel if len(r) > 1})
    # Labels only when every image sits in a class subdirectory (ImageFolder layout).
    if classes and all(len(r) > 1 for r in rel):
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[r[0]] for r in rel], dtype=np.int64)
        shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
        label_txt = f"{len(classes)} classes ({shown})"
    else:
        y, label_txt = None, "no labels"
    desc = f"image folder {os.path.abspath(path)}: {len(files)} images, {w}x{h} {mode}, {label_txt}"
    return ArrayData(x=x, y=y, kind="image", description=desc)
