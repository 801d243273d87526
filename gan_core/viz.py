"""Pure plotting helpers (numpy + matplotlib Agg + PIL; no Ray, no MLflow).

Uses matplotlib's object-oriented Figure API with FigureCanvasAgg, so the global
pyplot backend is never touched. Every ``save``/``plot`` function returns its path.
"""
from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

__all__ = ["image_grid", "save_image_grid", "scatter_plot", "density_plot_1d", "toy_plot"]

_FIGSIZE = (4, 4)
_DPI = 100


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _ensure_parent(path) -> None:
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)


def image_grid(
    images,
    nrow: Optional[int] = None,
    pad: int = 2,
    scale: int = 1,
    pad_value: float = 0.0,
) -> np.ndarray:
    """Tile ``images`` (N, C, H, W) floats in [0, 1] into one uint8 RGB array.

    ``nrow`` is the number of images per row (default ceil(sqrt(N)), capped at N); each tile is
    enlarged ``scale`` times (nearest neighbour) and surrounded by ``pad`` pixels of
    ``pad_value``. C may be 1 (grey, replicated to RGB), 3, or 4 (alpha dropped);
    (N, H, W) is treated as C = 1. Output shape:
    (rows * H * scale + (rows + 1) * pad, nrow * W * scale + (nrow + 1) * pad, 3).
    """
    x = _to_numpy(images).astype(np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {x.shape}")
    n, c, h, w = x.shape
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    if c == 1:
        x = np.repeat(x, 3, axis=1)
    elif c == 4:
        x = x[:, :3]
    elif c != 3:
        raise ValueError(f"images must have 1, 3 or 4 channels, got {c}")
    scale = int(scale)
    pad = int(pad)
    if scale < 1 or pad < 0:
        raise ValueError("scale must be >= 1 and pad >= 0")
    if scale > 1:
        x = np.repeat(np.repeat(x, scale, axis=2), scale, axis=3)
    th, tw = h * scale, w * scale
    x = np.nan_to_num(x, nan=0.0)
    tiles = np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8).transpose(0, 2, 3, 1)

    ncol = int(nrow) if nrow else int(math.ceil(math.sqrt(n)))
    ncol = max(1, min(ncol, n))  # like torchvision: never more columns than images
    nrows = int(math.ceil(n / ncol))
    fill = int(round(float(np.clip(pad_value, 0.0, 1.0)) * 255))
    grid = np.full(
        (nrows * th + (nrows + 1) * pad, ncol * tw + (ncol + 1) * pad, 3), fill, dtype=np.uint8
    )
    for i in range(n):
        r, col = divmod(i, ncol)
        y0 = pad + r * (th + pad)
        x0 = pad + col * (tw + pad)
        grid[y0 : y0 + th, x0 : x0 + tw] = tiles[i]
    return grid


def save_image_grid(images, path, nrow: Optional[int] = None, min_tile: int = 64):
    """Write ``image_grid(images)`` as a PNG; tiles are upscaled to >= ``min_tile`` px."""
    x = _to_numpy(images)
    h, w = x.shape[-2], x.shape[-1]
    scale = max(1, int(math.ceil(min_tile / max(1, min(h, w)))))
    grid = image_grid(x, nrow=nrow, pad=2, scale=scale)
    _ensure_parent(path)
    Image.fromarray(grid, mode="RGB").save(path, format="PNG")
    return path


def _new_axes():
    fig = Figure(figsize=_FIGSIZE, dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    return fig, ax


def _save(fig: Figure, path):
    _ensure_parent(path)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=_DPI)
    return path


def _finite_rows(x: np.ndarray) -> np.ndarray:
    return x[np.all(np.isfinite(x), axis=1)]


def scatter_plot(samples, centres=None, path="scatter.png", title: str = ""):
    """2-D scatter of ``samples`` (N, 2) with mode ``centres`` (K, 2) marked.

    Square, equal-aspect axes; limits cover the centres with a 25% margin (fixed
    across training so frames are comparable), or the samples when no centres.
    """
    x = _finite_rows(np.asarray(_to_numpy(samples), dtype=np.float64).reshape(-1, 2))
    fig, ax = _new_axes()
    ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.35, c="tab:blue", linewidths=0, zorder=2,
               label="samples")
    if centres is not None:
        c = np.asarray(_to_numpy(centres), dtype=np.float64).reshape(-1, 2)
        ax.scatter(c[:, 0], c[:, 1], s=40, marker="o", facecolors="none", edgecolors="tab:red",
                   linewidths=0.8, zorder=3, label="modes")
        ref = c
    else:
        ref = x if len(x) else np.zeros((1, 2))
    lo, hi = ref.min(axis=0), ref.max(axis=0)
    mid = (lo + hi) / 2.0
    half = float(max((hi - lo).max() / 2.0, 0.5))
    half *= 1.5  # margin
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_aspect("equal", adjustable="box")
    if title:
        ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return _save(fig, path)


def density_plot_1d(samples, mean: float, std: float, path="density.png", title: str = ""):
    """Histogram (density) of 1-D ``samples`` with the target N(mean, std) pdf overlaid."""
    x = np.asarray(_to_numpy(samples), dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    mean, std = float(mean), float(std)
    lo, hi = mean - 4.0 * std, mean + 4.0 * std
    if len(x):
        lo = min(lo, float(np.percentile(x, 0.5)))
        hi = max(hi, float(np.percentile(x, 99.5)))
    fig, ax = _new_axes()
    if len(x):
        ax.hist(x, bins=60, range=(lo, hi), density=True, alpha=0.6, color="tab:blue",
                label="samples")
    grid = np.linspace(lo, hi, 400)
    pdf = np.exp(-0.5 * ((grid - mean) / std) ** 2) / (std * math.sqrt(2.0 * math.pi))
    ax.plot(grid, pdf, color="tab:red", linewidth=1.5, label=f"N({mean:g}, {std:g})")
    ax.set_xlim(lo, hi)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return _save(fig, path)


def toy_plot(samples, source: str, centres, std: float, path, title: str = ""):
    """Scatter for 2-D toy sources, 1-D density for 1-D ones (e.g. ``gaussian_1d``).

    For 1-D data the target mean is ``centres`` (a scalar or (1, 1) array).
    """
    x = np.asarray(_to_numpy(samples))
    dim = 1 if x.ndim == 1 else x.shape[1]
    title = title or source
    if dim == 2:
        return scatter_plot(x, centres, path, title=title)
    if dim == 1:
        mean = float(np.asarray(centres, dtype=np.float64).reshape(-1)[0])
        return density_plot_1d(x, mean, std, path, title=title)
    raise ValueError(f"toy_plot supports 1-D or 2-D samples, got dim {dim} (source {source!r})")
