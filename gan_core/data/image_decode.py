"""The one way encoded images (PNG, JPEG, ...) become arrays, for every loader that reads them."""
from __future__ import annotations

import numpy as np


def decode_image(src, channels: int) -> np.ndarray:
    """A path or file object holding one encoded image -> (C, H, W) float32 in [0, 1], converted
    to grayscale (channels 1) or RGB (channels 3). PIL's OSError / ValueError propagate: the
    caller knows where the image came from and names that place in its DataError."""
    from PIL import Image

    with Image.open(src) as im:
        a = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).astype(np.float32) / 255
