import numpy as np
import pytest
from PIL import Image

from gan_core.viz import density_plot_1d, image_grid, save_image_grid, scatter_plot, toy_plot


def test_image_grid_shape_arithmetic():
    g = image_grid(np.zeros((10, 1, 8, 8)), nrow=5, pad=2, scale=1)
    assert g.shape == (2 * 8 + 3 * 2, 5 * 8 + 6 * 2, 3)
    assert g.dtype == np.uint8
    g = image_grid(np.zeros((10, 3, 8, 6)), nrow=4, pad=1, scale=3)
    # 3 rows of 4 columns; tiles are 24 x 18
    assert g.shape == (3 * 24 + 4 * 1, 4 * 18 + 5 * 1, 3)


def test_image_grid_default_nrow_is_ceil_sqrt():
    g = image_grid(np.zeros((10, 1, 4, 4)), pad=0)
    assert g.shape == (3 * 4, 4 * 4, 3)  # ceil(sqrt(10)) = 4 per row, 3 rows


def test_image_grid_pixel_values():
    imgs = np.zeros((4, 1, 8, 8))
    imgs[1] = 1.0  # white image: second tile on the first row
    g = image_grid(imgs, nrow=2, pad=2, scale=2)
    tile = g[2 : 2 + 16, 2 + 16 + 2 : 2 + 16 + 2 + 16]
    assert tile.shape == (16, 16, 3)
    assert (tile == 255).all()
    # everything else (pads, black tiles) is 0
    assert g.sum() == 16 * 16 * 3 * 255
    # colour channels land in the right place; out-of-range values are clipped
    rgb = np.zeros((1, 3, 2, 2))
    rgb[0, 0] = 2.0
    rgb[0, 2] = 0.5
    g = image_grid(rgb, pad=0)
    assert (g[..., 0] == 255).all() and (g[..., 1] == 0).all() and (g[..., 2] == 128).all()


def test_save_image_grid_png(tmp_path):
    path = tmp_path / "sub" / "grid.png"
    out = save_image_grid(np.random.default_rng(0).random((10, 1, 8, 8)), str(path), nrow=5)
    assert out == str(path)
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.mode == "RGB"
        # 8x8 tiles are upscaled x8 to 64 px
        assert im.size == (5 * 64 + 6 * 2, 2 * 64 + 3 * 2)


def _assert_png_not_blank(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape[0] >= 200 and arr.shape[1] >= 200
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 1


def test_scatter_plot(tmp_path):
    rng = np.random.default_rng(0)
    ang = 2 * np.pi * np.arange(8) / 8
    c = np.stack([np.cos(ang), np.sin(ang)], 1)
    x = c[rng.integers(0, 8, 1000)] + 0.01 * rng.standard_normal((1000, 2))
    p = scatter_plot(x, c, str(tmp_path / "s.png"), title="ring")
    assert p == str(tmp_path / "s.png")
    _assert_png_not_blank(p)
    p2 = scatter_plot(x, None, str(tmp_path / "s2.png"))
    _assert_png_not_blank(p2)


def test_density_plot_1d(tmp_path):
    x = np.random.default_rng(1).normal(4, 0.5, (2000, 1))
    p = density_plot_1d(x, 4.0, 0.5, str(tmp_path / "d.png"), title="1d")
    _assert_png_not_blank(p)


def test_toy_plot_dispatch(tmp_path):
    rng = np.random.default_rng(2)
    p1 = toy_plot(rng.normal(4, 0.5, (500, 1)), "gaussian_1d", np.array([[4.0]]), 0.5,
                  str(tmp_path / "a.png"))
    p2 = toy_plot(rng.normal(0, 1, (500, 2)), "grid", np.zeros((1, 2)), 0.05,
                  str(tmp_path / "b.png"))
    _assert_png_not_blank(p1)
    _assert_png_not_blank(p2)
    with pytest.raises(ValueError):
        toy_plot(np.zeros((5, 3)), "x", None, 1.0, str(tmp_path / "c.png"))
