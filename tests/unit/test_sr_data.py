"""Random crops for super-resolution: positions inside the training part only, held-out crops
from the held-out part only (a band of rows, or every 10th image), image folders of mixed sizes,
the bundled photographs, and errors naming the file."""
import numpy as np
import pytest
from PIL import Image

from gan_core.config import load_config
from gan_core.data import DataError, load_source
from gan_core.data.crops import crop_data


def _coordinates(h, w):
    """An image whose channel 0 holds the row and channel 1 the column of each pixel."""
    r, c = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([r, c])


def test_few_large_images_hold_out_their_bottom_rows():
    img = _coordinates(100, 60)
    data = crop_data([img, img], ["a", "b"], "two", size=10, n=500, n_holdout=200, seed=0)
    assert data.x.shape == (500, 2, 10, 10) and data.holdout.shape == (200, 2, 10, 10)
    held_rows = 20  # max(10, 20% of 100)
    assert data.x[:, 0].max() < 100 - held_rows  # no training pixel in the held-out band
    assert data.holdout[:, 0].min() >= 100 - held_rows
    # crops are windows of the image: rows and columns count up by one
    assert (np.diff(data.x[:, 0], axis=1) == 1).all() and (np.diff(data.x[:, 1], axis=2) == 1).all()
    tops, lefts = data.x[:, 0, 0, 0], data.x[:, 1, 0, 0]
    assert tops.min() == 0 and tops.max() == 70 and lefts.min() == 0 and lefts.max() == 50
    again = crop_data([img, img], ["a", "b"], "two", size=10, n=500, n_holdout=200, seed=0)
    assert np.array_equal(again.x, data.x) and np.array_equal(again.holdout, data.holdout)


def test_many_images_hold_out_every_tenth_whole():
    images = [np.full((1, 12, 12), i, np.float32) for i in range(30)]
    data = crop_data(images, [str(i) for i in range(30)], "thirty", size=8, n=600, n_holdout=100,
                     seed=1)
    train_ids, held_ids = set(np.unique(data.x)), set(np.unique(data.holdout))
    assert held_ids == {9, 19, 29}
    assert train_ids == set(range(30)) - {9, 19, 29}


def test_too_small_images_are_named():
    with pytest.raises(DataError, match="b.png: 8x8 is smaller than the 10x10 crops"):
        crop_data([_coordinates(50, 50), _coordinates(8, 8)], ["a.png", "b.png"], "d", 10, 5, 5, 0)
    with pytest.raises(DataError, match="a.png: 12 rows cannot hold"):
        crop_data([_coordinates(12, 50)], ["a.png"], "d", 10, 5, 5, 0)


def test_image_folder_of_mixed_sizes(tmp_path):
    rng = np.random.default_rng(0)
    for name, (h, w) in {"wide.png": (40, 90), "tall.jpg": (70, 33)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / name)
    cfg = load_config(None, ["data.source=image_folder", f"data.path={tmp_path}", "data.channels=3",
                             "data.random_crops=true", "data.image_size=16", "data.num_samples=64",
                             "data.holdout_crops=8"])
    data = load_source(cfg.data)
    assert data.x.shape == (64, 3, 16, 16) and data.holdout.shape == (8, 3, 16, 16)
    assert "2 images of any size" in data.description and "held-out" in data.description
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "tiny.png")
    with pytest.raises(DataError, match="tiny.png: 10x10 is smaller"):
        load_source(cfg.data)


def test_crops_of_the_bundled_photographs_and_mnist():
    cfg = load_config(None, ["data.source=sklearn_photos", "data.random_crops=true",
                             "data.image_size=32", "data.num_samples=100", "data.holdout_crops=20"])
    data = load_source(cfg.data, seed=3)
    assert data.x.shape == (100, 3, 32, 32) and data.holdout.shape == (20, 3, 32, 32)
    assert 0 <= data.x.min() and data.x.max() <= 1 and data.x.std() > 0.1  # real pixels
    assert "china.jpg" in data.description and "bottom" in data.description
    from tests.conftest import MNIST_DIR

    cfg = load_config(None, ["data.source=mnist", f"data.path={MNIST_DIR}", "data.random_crops=true",
                             "data.image_size=28", "data.num_samples=50", "data.holdout_crops=10"])
    data = load_source(cfg.data)
    assert data.x.shape == (50, 1, 28, 28) and "every 10th image (1000 images)" in data.description
