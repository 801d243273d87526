"""The user's own captioned images as JSON Lines, one object per line:

  {"image": "imgs/0001.png", "caption": "a thin seven"}   (path relative to the .jsonl file)
  {"image": {"bytes": "<base64 PNG/JPEG>"}, "captions": ["a seven", "the digit seven"], "label": 7}

"label" (an int) is optional, but then on every line or on none. Blank lines are skipped.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import os

import numpy as np

from gan_core.data import ArrayData, DataError, caption_problem
from gan_core.data.bad_samples import BadSamples
from gan_core.data.image_decode import decode_image


def load_captions_jsonl(path: str, channels: int, bad: BadSamples | None = None) -> ArrayData:
    bad = bad or BadSamples()
    if os.path.isdir(path):
        raise DataError(f"{path}: a directory; expected a .jsonl file")
    base = os.path.dirname(os.path.abspath(path))
    images, text, labels, lines = [], [], [], []
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            where = f"{path}: line {n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{where}: not UTF-8 text ({e})") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
            try:
                a = _image(rec, where, base, channels)
                if images and a.shape != images[0].shape:
                    raise DataError(f"{where}: image is {a.shape[2]}x{a.shape[1]} but line {lines[0]}'s "
                                    f"is {images[0].shape[2]}x{images[0].shape[1]}; all images must be "
                                    f"the same size")
            except DataError as e:  # a missing or broken image: the record may be skipped
                bad.found(e)
                continue
            text.append(_captions(rec, where))
            label = _label(rec, where)
            if lines and (label is None) != (labels[0] is None):
                has, lacks = (n, lines[0]) if labels[0] is None else (lines[0], n)
                raise DataError(f"{path}: line {has} has a label and line {lacks} has none; "
                                "give labels on every line or on none")
            images.append(a)
            labels.append(label)
            lines.append(n)
    if not images:
        raise DataError(f"{path}: no records (one JSON object per line)")
    x = np.stack(images)
    y = None if labels[0] is None else np.array(labels, dtype=np.int64)
    c, h, w = x.shape[1:]
    desc = (f"captions jsonl {os.path.abspath(path)}: {len(x)} images {w}x{h} "
            f"{'L' if c == 1 else 'RGB'}, {sum(map(len, text))} captions, "
            f"{'labels' if y is not None else 'no labels'}")
    return ArrayData(x=x, y=y, kind="image", description=desc, text=text)


def _image(rec: dict, where: str, base: str, channels: int) -> np.ndarray:
    if "image" not in rec:
        raise DataError(f"{where}: no 'image'")
    img = rec["image"]
    if isinstance(img, str):
        src = what = os.path.join(base, img)
        if not os.path.isfile(src):
            raise DataError(f"{where}: image file {src} not found")
    elif isinstance(img, dict) and isinstance(img.get("bytes"), str):
        try:
            src = io.BytesIO(base64.b64decode(img["bytes"], validate=True))
        except binascii.Error as e:
            raise DataError(f"{where}: image bytes are not base64 ({e})") from None
        what = "base64 image"
    else:
        raise DataError(f"{where}: 'image' must be a path or {{\"bytes\": \"<base64>\"}}, got {img!r:.60}")
    try:
        return decode_image(src, channels)
    except (OSError, ValueError) as e:
        raise DataError(f"{where}: cannot decode {what} ({e})") from None


def _captions(rec: dict, where: str) -> list[str]:
    if ("caption" in rec) == ("captions" in rec):
        raise DataError(f"{where}: give one of 'caption' (text) or 'captions' (a list of texts)"
                        + ("; it has both" if "caption" in rec else ""))
    caps = [rec["caption"]] if "caption" in rec else rec["captions"]
    problem = caption_problem(caps)
    if problem:
        raise DataError(f"{where}: {problem}")
    return list(caps)


def _label(rec: dict, where: str):
    label = rec.get("label")
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
        raise DataError(f"{where}: 'label' must be an integer, got {label!r:.40}")
    return label
