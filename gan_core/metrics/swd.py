"""Sliced Wasserstein distance between Laplacian-pyramid patch statistics (Karras et al. 2018,
ProGAN, appendix D; after their ``metrics/sliced_wasserstein.py``). Weight-free.

Per pyramid level: 128 random 7x7 neighbourhoods per image (C x 7 x 7 descriptors), each set's
descriptors normalised by their own per-channel mean and std, then the SWD: 4 repeats x 128
random unit directions (512 projections), sort the projections of both sets, mean |difference|.
Reported x1e3, as in the paper: ``swd_<res>`` per level (``res`` = that level's height, finest
first), ``swd`` = their mean.

Because each set is standardised per channel and level, a global affine change of intensity
(x -> a x + b, a > 0) leaves SWD unchanged; changes in local structure, contrast between regions,
saturation or noise show up.

Deviations from the paper: levels go down to ``min_res=8`` (the paper stops at 16, for 1024^2
images) so that 8x8-28x28 digits get at least one level; sets of different sizes are cut to the
smaller size (seeded); both sets use the same neighbourhood positions (drawn from ``seed``), so
SWD(x, x) is exactly 0.

numpy/scipy throughout, like the reference code (scipy.ndimage ``mode='mirror'`` pyramid), with
BLAS held to one thread (threadpoolctl, a scikit-learn dependency) for the projections: the sorts
dominate and are single-threaded anyway, and small multi-threaded matmuls stall badly on a busy
machine (20x slower here under load).
"""
from __future__ import annotations

import contextlib

import numpy as np
from scipy import ndimage

from .features import as_images, require_samples

__all__ = ["swd", "laplacian_pyramid", "sliced_wasserstein", "level_resolutions"]

NHOOD = 7
_G1 = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0
_GAUSS = np.outer(_G1, _G1)[None, None]  # (1, 1, 5, 5): blur within each image and channel


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _pyr_down(x: np.ndarray) -> np.ndarray:
    return ndimage.convolve(x, _GAUSS, mode="mirror")[:, :, ::2, ::2]


def _pyr_up(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    n, c, h, w = x.shape
    up = np.zeros((n, c, 2 * h, 2 * w), x.dtype)
    up[:, :, ::2, ::2] = x
    return ndimage.convolve(up, _GAUSS * 4.0, mode="mirror")[:, :, :size[0], :size[1]]


def laplacian_pyramid(x: np.ndarray, levels: int) -> list[np.ndarray]:
    """[band-pass finest, ..., low-pass coarsest], ``levels`` entries (the paper's pyramid)."""
    pyr = [np.asarray(x, np.float32)]
    for _ in range(1, levels):
        pyr.append(_pyr_down(pyr[-1]))
        pyr[-2] = pyr[-2] - _pyr_up(pyr[-1], pyr[-2].shape[2:])
    return pyr


def level_resolutions(h: int, w: int, min_res: int = 8) -> list[int]:
    """Heights of the pyramid levels: h, h/2, ... while >= min_res and the level fits a 7x7 patch."""
    res = []
    while h >= max(min_res, NHOOD) and w >= NHOOD:
        res.append(h)
        h, w = (h + 1) // 2, (w + 1) // 2
    return res


def _descriptors(level: np.ndarray, per_image: int, rng: np.random.Generator) -> np.ndarray:
    """``per_image`` random 7x7 neighbourhoods per image, standardised per channel -> (N*per_image, C*49)."""
    n, c, h, w = level.shape
    ys = rng.integers(0, h - NHOOD + 1, (n, per_image, 1, 1))
    xs = rng.integers(0, w - NHOOD + 1, (n, per_image, 1, 1))
    r = np.arange(NHOOD)
    rows = ys + r[None, None, :, None]  # (n, P, 7, 1)
    cols = xs + r[None, None, None, :]  # (n, P, 1, 7)
    idx = np.arange(n)[:, None, None, None]
    d = level.transpose(0, 2, 3, 1)[idx, rows, cols]  # (n, P, 7, 7, C)
    d = d.reshape(n * per_image, NHOOD * NHOOD, c)
    d = d - d.mean(axis=(0, 1), keepdims=True, dtype=np.float64).astype(np.float32)
    std = np.sqrt(np.square(d).mean(axis=(0, 1), keepdims=True, dtype=np.float64))
    d = d / np.maximum(std, 1e-12).astype(np.float32)
    return np.ascontiguousarray(d.transpose(0, 2, 1).reshape(n * per_image, c * NHOOD * NHOOD))


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, repeats: int, dirs_per_repeat: int,
                       rng: np.random.Generator) -> float:
    """Mean over repeats and random unit directions of the 1-D W1 between the projected sets."""
    if a.shape != b.shape:
        raise ValueError(f"descriptor sets differ in shape: {a.shape} vs {b.shape}")
    out = []
    for _ in range(repeats):
        dirs = rng.standard_normal((dirs_per_repeat, a.shape[1]))
        dirs = (dirs / np.linalg.norm(dirs, axis=1, keepdims=True)).astype(np.float32)
        total, step = 0.0, max(1, (1 << 23) // a.shape[0])  # <= 32 MiB of projections per set
        for i in range(0, dirs_per_repeat, step):
            pa = np.sort(dirs[i:i + step] @ a.T, axis=1)  # (directions, descriptors)
            pb = np.sort(dirs[i:i + step] @ b.T, axis=1)
            total += float(np.abs(pa - pb).sum(dtype=np.float64))
        out.append(total / (dirs_per_repeat * a.shape[0]))
    return float(np.mean(out))


def swd(fake, real, seed: int = 0, nhoods_per_image: int = 128, repeats: int = 4,
        dirs_per_repeat: int = 128, min_res: int = 8, net=None) -> dict:
    """SWD x1e3 between ``fake`` and ``real`` images (numpy/torch (N, C, H, W), same C, H, W).

    -> {"swd": mean over levels, "swd_<res>": per level}. Same inputs and ``seed``, same number.
    ``net`` is accepted and ignored (SWD needs no feature net), so callers can pass the same
    keywords to every metric."""
    xf, xr = as_images(fake, "fake images").numpy(), as_images(real, "real images").numpy()
    if xf.shape[1:] != xr.shape[1:]:
        raise ValueError(f"SWD needs images of one shape: fake {xf.shape} vs real {xr.shape}")
    require_samples(xf.shape[0], 1, "SWD", "fake images")
    require_samples(xr.shape[0], 1, "SWD", "real images")
    h, w = xf.shape[2:]
    resolutions = level_resolutions(h, w, min_res)
    if not resolutions:
        raise ValueError(f"SWD needs images of at least {max(min_res, NHOOD)}x{NHOOD}, got {h}x{w}")
    n = min(xf.shape[0], xr.shape[0])
    rng = np.random.default_rng(seed)
    if xf.shape[0] > n:
        xf = xf[np.sort(rng.permutation(xf.shape[0])[:n])]
    if xr.shape[0] > n:
        xr = xr[np.sort(rng.permutation(xr.shape[0])[:n])]
    pyr_f = laplacian_pyramid(xf, len(resolutions))
    pyr_r = laplacian_pyramid(xr, len(resolutions))
    out = {}
    with _one_blas_thread():
        for lvl, res in enumerate(resolutions):
            # same neighbourhood positions for both sets (positions do not depend on the content)
            df = _descriptors(pyr_f[lvl], nhoods_per_image, np.random.default_rng([seed, lvl, 1]))
            dr = _descriptors(pyr_r[lvl], nhoods_per_image, np.random.default_rng([seed, lvl, 1]))
            dirs_rng = np.random.default_rng([seed, lvl, 2])
            out[f"swd_{res}"] = 1e3 * sliced_wasserstein(df, dr, repeats, dirs_per_repeat, dirs_rng)
    out["swd"] = float(np.mean([out[f"swd_{r}"] for r in resolutions]))
    return out
