"""Captions for labelled digits, for text-to-image GAN-CLS.

No captioned digit set exists offline, so each caption names the digit and some attributes
measured on its own image (stroke thickness, slant, height, horizontal position): the text then
carries more than the class, and a generator can be scored on whether it follows the words.
caption_digit / caption_levels read a caption back for that scoring.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Optional

import numpy as np

from gan_core.data import ArrayData, DataError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# (level -1 word, level +1 word); level 0 (the middle tertile) is never named.
ATTRIBUTES = {"thickness": ("thin", "thick"), "slant": ("leaning left", "leaning right"),
              "height": ("small", "large"), "x_offset": ("on the left", "on the right")}
_ADJECTIVES = ("thickness", "height")  # words that go before the noun; the others after it


def measure_digits(x: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 1, H, W) images in [0, 1] -> one float64 array of N values per attribute:
    thickness: mean stroke width in pixels at 28-pixel scale (2 * area / perimeter of the ink
      mask x > 0.5, perimeter counted in pixel edges);
    slant: horizontal shear of the ink (dx/dy from intensity-weighted second moments, y up):
      positive when the top leans right;
    height: ink bounding-box height / H;  x_offset: ink centroid x minus the centre, / W.
    An image with no pixel above 0.5 has nothing to measure: all four are NaN for it, and
    thresholds / levels treat NaN as unmeasured (ignored, neutral)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected (N, 1, H, W) grayscale images, got shape {x.shape}")
    img = np.clip(x[:, 0], 0.0, 1.0)
    n, h, w = img.shape
    ink = img > 0.5
    empty = ~ink.any(axis=(1, 2))
    padded = np.pad(ink, ((0, 0), (1, 1), (1, 1))).astype(np.int8)
    perimeter = (np.abs(np.diff(padded, axis=1)).sum((1, 2))
                 + np.abs(np.diff(padded, axis=2)).sum((1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):  # empty images: NaN, set explicitly below
        thickness = 2.0 * ink.sum((1, 2)) / perimeter * (28.0 / h)
        total = img.sum((1, 2))
        rows, cols = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
        cy = (img * rows).sum((1, 2)) / total
        cx = (img * cols).sum((1, 2)) / total
        dr, dc = rows - cy[:, None, None], cols - cx[:, None, None]
        var_r = (img * dr ** 2).sum((1, 2)) / total
        cov = (img * dr * dc).sum((1, 2)) / total
    # Rows grow downwards, so x against upward y has slope -cov/var_r; one-row ink has no slant.
    slant = np.divide(-cov, var_r, out=np.zeros(n), where=var_r > 1e-12)
    any_row = ink.any(axis=2)
    top, bottom = any_row.argmax(1), h - 1 - any_row[:, ::-1].argmax(1)
    out = {"thickness": thickness, "slant": slant, "height": (bottom - top + 1) / h,
           "x_offset": (cx - (w - 1) / 2) / w}
    for v in out.values():
        v[empty] = np.nan
    return out


def thresholds(attrs: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Tertile bounds (low, high) of each attribute over the measured (non-NaN) images: plain
    floats, to be stored with a run and reused on other images."""
    out = {}
    for name in ATTRIBUTES:
        v = np.asarray(attrs[name], dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            raise DataError(f"no image has ink (pixels > 0.5): '{name}' cannot be measured")
        lo, hi = np.quantile(v, [1 / 3, 2 / 3])
        out[name] = (float(lo), float(hi))
    return out


def levels(attrs: dict[str, np.ndarray], thr: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """-1 below the low tertile bound, +1 above the high one, else 0 (NaN, i.e. no ink, is 0).
    Strict comparisons: values tied with a bound stay neutral."""
    out = {}
    for name in ATTRIBUTES:
        v = np.asarray(attrs[name], dtype=np.float64)
        lo, hi = thr[name]
        out[name] = (v > hi).astype(np.int64) - (v < lo).astype(np.int64)
    return out


def _a(word: str) -> str:
    # By sound: "an eight", but "a one".
    return ("an " if word[0] in "aeiou" and not word.startswith("one") else "a ") + word


def _listing(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _noun(digit: str, picked: list[tuple[str, str]]) -> str:
    # "a small thick seven leaning right, on the left"
    adjs = [w for k, w in picked if k in _ADJECTIVES]
    rest = [w for k, w in picked if k not in _ADJECTIVES]
    return _a(" ".join(adjs + [digit])) + (" " + ", ".join(rest) if rest else "")


def _listed(fmt: str, plain: str) -> Callable[[str, list], str]:
    def template(digit: str, picked: list[tuple[str, str]]) -> str:
        if not picked:
            return plain.format(d=digit, a=_a(digit))
        return fmt.format(d=digit, words=_listing([w for _, w in picked]))
    return template


# Each template: (digit word, [(attribute, word), ...] in random order) -> caption.
TEMPLATES: tuple[Callable[[str, list], str], ...] = (
    _noun,
    _listed("the digit {d}, {words}", "the digit {d}"),
    _listed("a handwritten {d} that is {words}", "a handwritten {d}"),
    _listed("{d} written {words}", "the number {d}"),
    _listed("this {d} is {words}.", "this is {a}."),
)


def describe(labels, attrs: dict[str, np.ndarray], thr: dict[str, tuple[float, float]],
             seed: int, per_image: int = 3) -> list[list[str]]:
    """per_image captions per image, each naming its digit word and a random non-empty subset of
    its non-neutral attributes (only the digit when all are neutral). An image's captions use
    different templates while per_image <= len(TEMPLATES). Deterministic for a seed."""
    if per_image < 1:
        raise ValueError(f"per_image must be >= 1, got {per_image}")
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"digit labels must be 0..9, got {labels.min()}..{labels.max()}")
    lv = levels(attrs, thr)
    table = np.stack([lv[k] for k in ATTRIBUTES], axis=1)
    rng = np.random.default_rng(seed)
    out = []
    for label, row in zip(labels, table):
        words = [(k, ATTRIBUTES[k][int(l > 0)]) for k, l in zip(ATTRIBUTES, row) if l]
        order = rng.permutation(len(TEMPLATES))
        caps = []
        for j in range(per_image):
            size = int(rng.integers(1, len(words) + 1)) if words else 0
            picked = [words[i] for i in rng.permutation(len(words))[:size]]
            caps.append(TEMPLATES[order[j % len(TEMPLATES)]](DIGIT_WORDS[int(label)], picked))
        out.append(caps)
    return out


def caption_digit(caption: str) -> Optional[int]:
    """The digit a caption names by word (zero .. nine); None when it names none or several."""
    found = {DIGIT_WORDS.index(t) for t in re.findall(r"[a-z]+", caption.lower()) if t in DIGIT_WORDS}
    return found.pop() if len(found) == 1 else None


def caption_levels(caption: str) -> dict[str, int]:
    """Attribute levels a caption names: -1 / +1 for the words of ATTRIBUTES, 0 when neither
    (or, contradictorily, both) of an attribute's words appear."""
    text = " ".join(re.findall(r"[a-z]+", caption.lower()))
    named = {w: re.search(rf"\b{w}\b", text) is not None for pair in ATTRIBUTES.values() for w in pair}
    return {k: int(named[pos]) - int(named[neg]) for k, (neg, pos) in ATTRIBUTES.items()}


def captioned(data: ArrayData, seed: int, per_image: int = 3) -> ArrayData:
    """A labelled grayscale digit set (sklearn digits, MNIST) with generated captions as text.
    Tertiles come from this data: thresholds(measure_digits(data.x)) gives them again."""
    if data.y is None:
        raise DataError(f"captions name the digit, and the data has no labels ({data.description})")
    if data.kind != "image" or data.x.ndim != 4 or data.x.shape[1] != 1:
        raise DataError(f"captions are measured on grayscale images, got {data.kind} data of shape "
                        f"{data.x.shape} ({data.description})")
    attrs = measure_digits(data.x)
    text = describe(data.y, attrs, thresholds(attrs), seed, per_image)
    desc = f"{data.description}; {per_image} generated captions per image (seed {seed})"
    return dataclasses.replace(data, text=text, description=desc)
