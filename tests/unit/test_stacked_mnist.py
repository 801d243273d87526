"""Stacked MNIST: the loader (three independent digits as RGB, label 100R + 10G + B), the source
in the config and load_source, and the mode-coverage metric with a stand-in classifier."""
import math

import numpy as np
import pytest
import torch

from gan_core.config import ConfigError, DataConfig, load_config
from gan_core.data import DataError, load_source
from gan_core.data.mnist_idx import load_mnist
from gan_core.data.stacked_mnist import load_stacked_mnist
from gan_core.metrics.histogram import kl_to_uniform
from gan_core.metrics.stacked_mnist import stacked_mnist_modes
from tests.conftest import MNIST_DIR, REPO

needs_mnist = pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"{MNIST_DIR} not present")


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(str(MNIST_DIR))


# ---------------------------------------------------------------- loader


@needs_mnist
def test_loader_shape_range_and_labels(mnist):
    data = load_stacked_mnist(str(MNIST_DIR), 500, seed=0)
    assert data.kind == "image" and "stacked MNIST" in data.description
    assert data.x.shape == (500, 3, 28, 28) and data.x.dtype == np.float32
    assert 0 <= data.x.min() and data.x.max() <= 1
    assert data.y.shape == (500,) and data.y.dtype == np.int64
    assert 0 <= data.y.min() and data.y.max() <= 999
    assert len(np.unique(data.y)) > 300  # 500 draws from 1,000 near-uniform modes


@needs_mnist
def test_each_channel_is_a_real_mnist_image_of_the_labelled_digit(mnist):
    data = load_stacked_mnist(str(MNIST_DIR), 8, seed=3)
    flat = mnist.x.reshape(len(mnist.x), -1)
    for i in range(8):
        digits = (data.y[i] // 100, data.y[i] // 10 % 10, data.y[i] % 10)
        for c in range(3):
            matches = np.flatnonzero((flat == data.x[i, c].reshape(1, -1)).all(1))
            assert len(matches) >= 1, f"sample {i} channel {c} is no MNIST image"
            assert digits[c] in mnist.y[matches]


@needs_mnist
def test_channels_are_drawn_independently(mnist):
    y = load_stacked_mnist(str(MNIST_DIR), 20_000, seed=1).y
    r, g, b = y // 100, y // 10 % 10, y % 10
    for d in (r, g, b):  # each channel's digits follow MNIST's own digit frequencies
        freq = np.bincount(d, minlength=10) / len(d)
        np.testing.assert_allclose(freq, np.bincount(mnist.y, minlength=10) / len(mnist.y), atol=0.015)
    assert abs(np.corrcoef(r, g)[0, 1]) < 0.03 and abs(np.corrcoef(g, b)[0, 1]) < 0.03
    assert len(np.unique(y)) == 1000


@needs_mnist
def test_loader_is_seeded():
    a = load_stacked_mnist(str(MNIST_DIR), 64, seed=7)
    b = load_stacked_mnist(str(MNIST_DIR), 64, seed=7)
    c = load_stacked_mnist(str(MNIST_DIR), 64, seed=8)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)


@needs_mnist
def test_load_source_dispatches_stacked_mnist():
    cfg = DataConfig(source="stacked_mnist", path=str(MNIST_DIR), num_samples=32, channels=3,
                     image_size=28)
    a = load_source(cfg, seed=5)
    assert a.x.shape == (32, 3, 28, 28) and a.y.shape == (32,)
    assert np.array_equal(a.y, load_stacked_mnist(str(MNIST_DIR), 32, seed=5).y)


def test_load_source_missing_directory(tmp_path):
    cfg = DataConfig(source="stacked_mnist", path=str(tmp_path / "nope"), channels=3)
    with pytest.raises(DataError, match="nope"):
        load_source(cfg)


def test_loader_needs_labels(tmp_path):
    import struct
    imgs = np.zeros((2, 28, 28), np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, 2, 28, 28) + imgs.tobytes())
    with pytest.raises(DataError, match="labels"):
        load_stacked_mnist(str(tmp_path), 4, seed=0)


# ---------------------------------------------------------------- config


@needs_mnist
def test_shipped_config_loads():
    cfg = load_config(str(REPO / "tune_configs" / "dcgan_stacked_mnist.yaml"),
                      [f"data.path={MNIST_DIR}"])
    assert (cfg.data.source, cfg.data.channels, cfg.data.image_size) == ("stacked_mnist", 3, 28)
    assert cfg.mlflow.registered_model == "stacked-mnist-dcgan"


@pytest.mark.parametrize("overrides, key", [
    (["data.source=stacked_mnist", "data.path=/tmp", "data.channels=1"], "data.channels"),
    (["data.source=stacked_mnist", "data.channels=3"], "data.path"),
    (["data.source=stacked_mnist", "data.path=/no/such/dir", "data.channels=3"], "data.path"),
])
def test_config_errors(overrides, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert e.value.key == key


# ---------------------------------------------------------------- mode metric


def encode(digits: np.ndarray, size: int = 4) -> np.ndarray:
    """(N, 3) digits -> (N, 3, size, size) images in [-1, 1] whose channel value encodes the digit."""
    v = digits.astype(np.float32) / 9 * 2 - 1
    return np.broadcast_to(v[:, :, None, None], (len(digits), 3, size, size)).copy()


def by_intensity(x):
    """The stand-in classifier: (M, 1, H, W) in [-1, 1] -> the digit encoded by `encode`."""
    assert x.ndim == 4 and x.shape[1] == 1
    mean = np.asarray(x).reshape(len(x), -1).mean(1)
    return np.rint((mean + 1) / 2 * 9).astype(np.int64)


def triples(modes):
    modes = np.asarray(modes)
    return np.stack([modes // 100, modes // 10 % 10, modes % 10], 1)


def test_every_mode_once_is_uniform():
    out = stacked_mnist_modes(encode(triples(np.arange(1000))), by_intensity)
    assert out["modes"] == 1000 and out["num_samples"] == 1000
    assert out["kl"] == pytest.approx(0.0, abs=1e-12)


def test_identical_samples_hit_one_mode():
    out = stacked_mnist_modes(encode(triples([372] * 50)), by_intensity)
    assert out == {"modes": 1, "kl": pytest.approx(math.log(1000)),
                   "kl_digits": pytest.approx(math.log(1000)), "kl_coupling": pytest.approx(0.0),
                   "num_samples": 50}


def test_kl_of_tied_channels_is_all_coupling():
    # 000, 111, ..., 999 equally often: each channel's digits are uniform, but one fixes the others
    out = stacked_mnist_modes(encode(triples(np.arange(10) * 111)), by_intensity)
    assert out["modes"] == 10 and out["kl"] == pytest.approx(math.log(100))
    assert out["kl_digits"] == pytest.approx(0.0, abs=1e-12)
    assert out["kl_coupling"] == pytest.approx(math.log(100))


def test_kl_of_a_favoured_digit_with_independent_channels_is_all_digits():
    # red is 0 for half the samples and 1..9 for the rest; green and blue uniform and independent
    red = np.r_[np.zeros(9, np.int64), np.arange(1, 10)]
    digits = np.array([(r, g, b) for r in red for g in range(10) for b in range(10)])
    out = stacked_mnist_modes(encode(digits), by_intensity)
    want = 0.5 * math.log(5) + 0.5 * math.log(10 / 18)  # red: p(0) = 1/2, p(1..9) = 1/18 each
    assert out["modes"] == 1000 and out["kl"] == pytest.approx(want)
    assert out["kl_digits"] == pytest.approx(want)
    assert out["kl_coupling"] == pytest.approx(0.0, abs=1e-12)


def test_kl_splits_into_digits_and_coupling():
    rng = np.random.default_rng(3)
    modes = rng.choice(1000, 5000, p=rng.dirichlet(np.full(1000, 0.3)))
    out = stacked_mnist_modes(encode(triples(modes)), by_intensity)
    assert out["kl_digits"] > 0 and out["kl_coupling"] > 0
    assert out["kl_digits"] + out["kl_coupling"] == pytest.approx(out["kl"])


def test_kl_of_a_small_histogram():
    modes = [123, 123, 123, 456, 7, 7]  # p = 1/2, 1/6, 1/3
    out = stacked_mnist_modes(encode(triples(modes)), by_intensity)
    want = 0.5 * math.log(500) + (1 / 6) * math.log(1000 / 6) + (1 / 3) * math.log(1000 / 3)
    assert out["modes"] == 3 and out["kl"] == pytest.approx(want)


def test_channels_are_classified_separately_in_rgb_order():
    seen = []

    def lookup(x):  # a classifier that reads a digit from the top-left pixel
        seen.append(x.shape)
        return np.rint((x[:, 0, 0, 0] + 1) / 2 * 9).astype(np.int64)

    x = encode(triples([901, 190, 19]), size=6)
    out = stacked_mnist_modes(x, lookup)
    assert out["modes"] == 3
    assert seen == [(3, 1, 6, 6)] * 3
    # 901 vs 109: the same digits in another channel order are another mode
    assert stacked_mnist_modes(encode(triples([901, 109])), by_intensity)["modes"] == 2


def test_chunking_and_torch_input_give_the_same_result():
    rng = np.random.default_rng(0)
    x = encode(triples(rng.integers(0, 1000, 300)))
    want = stacked_mnist_modes(x, by_intensity)
    calls = []

    def torch_classify(t):
        assert isinstance(t, torch.Tensor)
        calls.append(len(t))
        return torch.from_numpy(by_intensity(t.numpy()))

    got = stacked_mnist_modes(torch.from_numpy(x), torch_classify, batch_size=64)
    assert got == want
    assert calls == [64, 64, 64, 64, 44] * 3


def test_bad_inputs():
    with pytest.raises(ValueError, match="3, H, W"):
        stacked_mnist_modes(np.zeros((4, 1, 8, 8)), by_intensity)
    with pytest.raises(ValueError, match="shape"):
        stacked_mnist_modes(encode(triples([1, 2])), lambda x: np.zeros(1, np.int64))
    with pytest.raises(ValueError, match="0..9"):
        stacked_mnist_modes(encode(triples([1, 2])), lambda x: np.full(len(x), 10))
    with pytest.raises(ValueError, match="integer"):
        stacked_mnist_modes(encode(triples([1, 2])), lambda x: np.zeros(len(x)))
    empty = stacked_mnist_modes(np.zeros((0, 3, 8, 8)), by_intensity)
    assert (empty["modes"], empty["kl"], empty["kl_digits"], empty["num_samples"]) == (0, math.inf, math.inf, 0)
    assert math.isnan(empty["kl_coupling"])


def test_kl_to_uniform_by_hand():
    assert kl_to_uniform(np.array([3, 0, 1])) == pytest.approx(0.75 * math.log(2.25) + 0.25 * math.log(0.75))
    assert kl_to_uniform(np.array([2, 2, 2, 2])) == 0.0
    assert kl_to_uniform(np.zeros(5)) == math.inf
