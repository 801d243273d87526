"""Per-batch preprocessing for the Ray pipeline's map_batches (pure numpy/torch)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gan_core.config import ConfigError

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as PIL's "L"


def preprocess_images(x: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """(B, C, H, W) in [0, 1] -> (B, channels, image_size, image_size) float32 in [-1, 1]."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) images, got shape {x.shape}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    c = x.shape[1]
    if c == 4:
        x, c = x[:, :3], 3  # drop alpha
    if c != channels:
        if c == 1:
            x = np.repeat(x, 3, axis=1)
        elif c == 3:
            x = np.einsum("bchw,c->bhw", x, _LUMA)[:, None]
        else:
            raise ValueError(f"cannot convert {c} channels to {channels}")
    h, w = x.shape[2:]
    if (h, w) != (image_size, image_size):
        down = h > image_size or w > image_size  # antialias only matters when shrinking
        t = torch.from_numpy(np.ascontiguousarray(x))
        x = F.interpolate(t, size=(image_size, image_size), mode="bilinear",
                          align_corners=False, antialias=down).numpy()
    # Clip: interpolation weights are convex, but float rounding can step just outside [0, 1].
    return np.clip(x, 0.0, 1.0) * np.float32(2) - np.float32(1)


def pad_images(x: np.ndarray, size: int) -> np.ndarray:
    """(N, C, H, W) zero-padded (black in [0, 1]), centred, to (N, C, size, size); data.pad_to."""
    h, w = x.shape[2:]
    if h > size or w > size:
        raise ConfigError("data.pad_to", f"{size} is smaller than the {h}x{w} images")
    top, left = (size - h) // 2, (size - w) // 2
    return np.pad(x, ((0, 0), (0, 0), (top, size - h - top), (left, size - w - left)))


def preprocess_points(x: np.ndarray) -> np.ndarray:
    """Points pass through as float32 (N, D); exists so both kinds share one map_batches path."""
    x = np.asarray(x, dtype=np.float32)
    return x[:, None] if x.ndim == 1 else x


def to_unit_range(x):
    """Inverse of the [-1, 1] mapping, clipped to [0, 1]; numpy arrays or torch tensors."""
    if isinstance(x, torch.Tensor):
        return ((x + 1) / 2).clamp(0, 1)
    return np.clip((np.asarray(x, dtype=np.float32) + 1) / 2, 0.0, 1.0)
