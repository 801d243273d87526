"""A directory tree of image files; top-level subdirectories, if any, are the classes."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from gan_core.data import ArrayData, DataError
from gan_core.data.bad_samples import BadSamples
from gan_core.data.image_decode import decode_image

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def list_images(root: Path) -> list[Path]:
    # Hidden entries (.ipynb_checkpoints, macOS ._ files) are never data.
    return sorted(p for p in root.rglob("*")
                  if p.suffix.lower() in EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _image_files(path: str) -> tuple[Path, list[Path]]:
    """The folder and its image files; an error when it is not a folder or holds none."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{path}: not a directory")
    files = list_images(root)
    if not files:
        raise DataError(f"{path}: no images ({', '.join(EXTENSIONS)}) found")
    return root, files


def load_image_folder(path: str, channels: int, bad: BadSamples | None = None) -> ArrayData:
    from PIL import Image, UnidentifiedImageError

    bad = bad or BadSamples()
    root, files = _image_files(path)
    # Headers first: a size mismatch is reported before any pixels are decoded.
    sizes = {}
    for f in files:
        try:
            with Image.open(f) as im:
                sizes[f] = im.size
        except (UnidentifiedImageError, OSError) as e:
            bad.found(DataError(f"{f}: unreadable image ({e})"))
    if not sizes:
        raise DataError(f"{path}: none of the {len(files)} images is readable")
    majority, _ = Counter(sizes.values()).most_common(1)[0]
    mode = "L" if channels == 1 else "RGB"
    w, h = majority
    kept, x = [], np.empty((len(sizes), channels, h, w), dtype=np.float32)
    for f, s in sizes.items():
        if s != majority:
            bad.found(DataError(f"{f}: size {s[0]}x{s[1]} differs from the majority size "
                                f"{majority[0]}x{majority[1]}; all images must be the same size"))
            continue
        try:
            x[len(kept)] = decode_image(f, channels)
        except (OSError, ValueError) as e:  # truncated/corrupt pixel data
            bad.found(DataError(f"{f}: cannot decode image ({e})"))
            continue
        kept.append(f)
    files, x = kept, x[:len(kept)]
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


def load_image_list(path: str, channels: int) -> tuple[list[np.ndarray], list[str], str]:
    """Every image under `path` at its own size (for random crops): arrays, file names and a
    description line."""
    _, files = _image_files(path)
    images = []
    for f in files:
        try:
            images.append(decode_image(f, channels))
        except (OSError, ValueError) as e:  # unreadable, truncated or corrupt
            raise DataError(f"{f}: cannot decode image ({e})") from None
    mode = "L" if channels == 1 else "RGB"
    return images, [str(f) for f in files], \
        f"image folder {os.path.abspath(path)}: {len(files)} images of any size, {mode}"
