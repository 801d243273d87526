"""gan_core.data: every source against its spec, and the failure messages users will see."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct

import numpy as np
import pytest
import torch

from gan_core.config import DataConfig
from gan_core.data import ArrayData, DataError, load_source
from gan_core.data.toys import toy_modes
from gan_core.data.transforms import preprocess_images, preprocess_points, to_unit_range

MNIST_DIR = "/work/shared/data/mnist"
MNIST_MD5 = {"t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
             "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
needs_mnist = pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason=f"{MNIST_DIR} not present")


def cfg(source, **kw) -> DataConfig:
    return DataConfig(source=source, **kw)


# ---------------------------------------------------------------- toys

def test_gaussian_1d_mean_std_shape():
    d = load_source(cfg("gaussian_1d", num_samples=20_000), seed=1)
    assert d.kind == "points" and d.y is None
    assert d.x.shape == (20_000, 1) and d.x.dtype == np.float32
    # Standard errors: mean 0.5/sqrt(2e4) = 0.0035, std ~0.0025.
    assert abs(d.x.mean() - 4.0) < 0.02
    assert abs(d.x.std() - 0.5) < 0.015
    assert toy_modes("gaussian_1d")[1] == 0.5
    np.testing.assert_array_equal(toy_modes("gaussian_1d")[0], [[4.0]])


@pytest.mark.parametrize("source,k,std", [("ring", 8, 0.01), ("grid", 25, 0.05)])
def test_mixture_modes_covered_equally(source, k, std):
    n = 25_000
    d = load_source(cfg(source, num_samples=n), seed=0)
    centres, s = toy_modes(source)
    assert s == std and centres.shape == (k, 2)
    assert d.x.shape == (n, 2) and d.x.dtype == np.float32
    dist = np.linalg.norm(d.x[:, None, :] - centres[None], axis=2)
    nearest, near_d = dist.argmin(1), dist.min(1)
    assert (near_d < 4 * std).mean() > 0.99
    counts = np.bincount(nearest, minlength=k)
    assert counts.min() > 0.8 * n / k and counts.max() < 1.2 * n / k
    # Within-mode spread matches the spec std per coordinate.
    resid = d.x - centres[nearest]
    assert np.allclose(resid.std(0), std, rtol=0.05)


def test_mode_geometry():
    ring, _ = toy_modes("ring")
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 1.0)
    np.testing.assert_allclose(ring[2], [0.0, 1.0], atol=1e-12)  # angle 2*pi*2/8 = pi/2
    grid, _ = toy_modes("grid")
    assert sorted(set(grid[:, 0])) == [-4, -2, 0, 2, 4] and len({tuple(c) for c in grid}) == 25


def test_toy_seeded():
    a = load_source(cfg("ring", num_samples=100), seed=3).x
    b = load_source(cfg("ring", num_samples=100), seed=3).x
    c = load_source(cfg("ring", num_samples=100), seed=4).x
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ---------------------------------------------------------------- sklearn digits

def test_sklearn_digits():
    d = load_source(cfg("sklearn_digits"))
    assert d.kind == "image" and d.x.shape == (1797, 1, 8, 8) and d.x.dtype == np.float32
    assert d.x.min() == 0.0 and d.x.max() == 1.0
    assert d.y.dtype == np.int64 and set(d.y.tolist()) == set(range(10))
    assert np.all(np.isin(d.x * 16, np.arange(17)))  # exactly k/16


# ---------------------------------------------------------------- MNIST IDX

@pytest.fixture(scope="module")
def mnist() -> ArrayData:
    if not os.path.isdir(MNIST_DIR):
        pytest.skip(f"{MNIST_DIR} not present")
    return load_source(cfg("mnist", path=MNIST_DIR))


@pytest.fixture(scope="module")
def raw_idx():
    """Gunzipped bytes of the real files: name -> bytes."""
    if not os.path.isdir(MNIST_DIR):
        pytest.skip(f"{MNIST_DIR} not present")
    return {n.removesuffix(".gz"): gzip.decompress(open(os.path.join(MNIST_DIR, n), "rb").read())
            for n in MNIST_MD5}


@needs_mnist
def test_mnist_fixture_files_are_the_known_ones():
    for n, md5 in MNIST_MD5.items():
        assert hashlib.md5(open(os.path.join(MNIST_DIR, n), "rb").read()).hexdigest() == md5


def test_mnist_test_split(mnist, raw_idx):
    assert mnist.kind == "image" and mnist.x.shape == (10_000, 1, 28, 28)
    assert mnist.x.dtype == np.float32 and mnist.y.dtype == np.int64
    assert mnist.x.min() == 0.0 and mnist.x.max() == 1.0
    assert np.bincount(mnist.y).tolist() == MNIST_TEST_COUNTS
    # Independent decode of the payload: header is 16 bytes (magic + 3 dims).
    pixels = np.frombuffer(raw_idx["t10k-images-idx3-ubyte"][16:], np.uint8)
    assert abs(mnist.x.mean() - pixels.mean() / 255) < 1e-6
    assert "t10k-images-idx3-ubyte.gz" in mnist.description
    assert "t10k-labels-idx1-ubyte.gz" in mnist.description
    assert "no training split" in mnist.description


def test_mnist_raw_equals_gz(mnist, raw_idx, tmp_path):
    for n, b in raw_idx.items():
        (tmp_path / n).write_bytes(b)
    d = load_source(cfg("mnist", path=str(tmp_path)))
    np.testing.assert_array_equal(d.x, mnist.x)
    np.testing.assert_array_equal(d.y, mnist.y)
    # A path straight to the images file also finds the labels beside it.
    d2 = load_source(cfg("mnist", path=str(tmp_path / "t10k-images-idx3-ubyte")))
    np.testing.assert_array_equal(d2.y, mnist.y)


def test_mnist_train_and_test_concatenated(raw_idx, tmp_path):
    for n, b in raw_idx.items():
        (tmp_path / n).write_bytes(b)
    # A 5-image "train" split built by hand: header + payload.
    imgs = np.frombuffer(raw_idx["t10k-images-idx3-ubyte"][16:], np.uint8)[: 5 * 784]
    (tmp_path / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, 5, 28, 28) + imgs.tobytes())
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, 5) + bytes([9, 8, 7, 6, 5]))
    d = load_source(cfg("mnist", path=str(tmp_path)))
    assert d.x.shape == (10_005, 1, 28, 28)
    assert d.y[:5].tolist() == [9, 8, 7, 6, 5] and d.y[5:12].tolist() == [7, 2, 1, 0, 4, 1, 4]
    np.testing.assert_array_equal(d.x[0], d.x[5])  # train row 0 was copied from t10k row 0


def test_mnist_truncated(raw_idx, tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(raw_idx["t10k-images-idx3-ubyte"][:1000])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*truncated"):
        load_source(cfg("mnist", path=str(tmp_path)))


@needs_mnist
def test_mnist_bad_gzip(tmp_path):
    gz = open(os.path.join(MNIST_DIR, "t10k-images-idx3-ubyte.gz"), "rb").read()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*gzip"):
        load_source(cfg("mnist", path=str(tmp_path)))


def test_mnist_wrong_magic(raw_idx, tmp_path):
    # Labels bytes under the images name: magic 0x801 instead of 0x803.
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(raw_idx["t10k-labels-idx1-ubyte"])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.*magic.*0x00000801"):
        load_source(cfg("mnist", path=str(tmp_path)))
    bad_type = bytearray(raw_idx["t10k-images-idx3-ubyte"])
    bad_type[2] = 0x0D  # float32 type byte
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(bytes(bad_type))
    with pytest.raises(DataError, match="type byte 0x0d"):
        load_source(cfg("mnist", path=str(tmp_path)))


def test_mnist_label_count_mismatch(raw_idx, tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(raw_idx["t10k-images-idx3-ubyte"])
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, 3) + bytes([1, 2, 3]))
    with pytest.raises(DataError) as e:
        load_source(cfg("mnist", path=str(tmp_path)))
    assert "t10k-images-idx3-ubyte" in str(e.value) and "t10k-labels-idx1-ubyte" in str(e.value)
    assert "3 labels" in str(e.value) and "10000 images" in str(e.value)


def test_mnist_no_images_lists_names(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DataError) as e:
        load_source(cfg("mnist", path=str(tmp_path)))
    msg = str(e.value)
    for n in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz", "readme.txt"):
        assert n in msg


def test_images_without_labels(raw_idx, tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(raw_idx["t10k-images-idx3-ubyte"])
    d = load_source(cfg("mnist", path=str(tmp_path)))
    assert d.y is None and d.x.shape[0] == 10_000


# ---------------------------------------------------------------- image folder

def _png(arr: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _u8(mnist, i):
    return np.round(mnist.x[i, 0] * 255).astype(np.uint8)


def test_image_folder_round_trip(mnist, tmp_path):
    idx = np.arange(60)
    for i in idx:  # zero-padded names keep sorted order == index order within a class
        d = tmp_path / f"class_{mnist.y[i]}"
        d.mkdir(exist_ok=True)
        (d / f"{i:04d}.png").write_bytes(_png(_u8(mnist, i)))
    out = load_source(cfg("image_folder", path=str(tmp_path)))
    order = sorted(idx, key=lambda i: (mnist.y[i], i))  # classes sorted, then files sorted
    np.testing.assert_array_equal(out.x, mnist.x[order])
    classes = sorted(set(mnist.y[idx].tolist()))
    np.testing.assert_array_equal(out.y, [classes.index(mnist.y[i]) for i in order])
    assert out.x.shape[1:] == (1, 28, 28)
    rgb = load_source(cfg("image_folder", path=str(tmp_path), channels=3))
    assert rgb.x.shape[1] == 3
    np.testing.assert_array_equal(rgb.x[:, 1], out.x[:, 0])


def test_image_folder_flat_has_no_labels(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.PNG").write_bytes(_png(np.full((5, 7), 40 * i, np.uint8)))
    d = load_source(cfg("image_folder", path=str(tmp_path)))
    assert d.y is None and d.x.shape == (3, 1, 5, 7)
    np.testing.assert_allclose(d.x.reshape(3, -1).mean(1), [0, 40 / 255, 80 / 255], rtol=1e-6)


def test_image_folder_mixed_sizes(tmp_path):
    for i in range(3):
        (tmp_path / f"a{i}.png").write_bytes(_png(np.zeros((8, 8), np.uint8)))
    (tmp_path / "odd.png").write_bytes(_png(np.zeros((9, 8), np.uint8)))
    with pytest.raises(DataError, match=r"odd\.png.*8x9.*8x8"):
        load_source(cfg("image_folder", path=str(tmp_path)))


def test_image_folder_corrupt(tmp_path):
    (tmp_path / "ok.png").write_bytes(_png(np.zeros((8, 8), np.uint8)))
    (tmp_path / "x.png").write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(DataError, match=r"x\.png"):
        load_source(cfg("image_folder", path=str(tmp_path)))


def test_image_folder_truncated_pixels(tmp_path):
    good = _png(np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8))
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])  # header intact, data cut
    with pytest.raises(DataError, match=r"cut\.png"):
        load_source(cfg("image_folder", path=str(tmp_path)))


def test_image_folder_empty(tmp_path):
    (tmp_path / "notes.txt").write_text("no images")
    with pytest.raises(DataError, match="no images"):
        load_source(cfg("image_folder", path=str(tmp_path)))


# ---------------------------------------------------------------- parquet

def _write(table, path):
    import pyarrow.parquet as pq
    pq.write_table(table, path)
    return str(path)


def test_parquet_png_bytes(mnist, tmp_path):
    import pyarrow as pa
    n = 40
    table = pa.table({"image": pa.array([_png(_u8(mnist, i)) for i in range(n)], pa.binary()),
                      "label": pa.array(mnist.y[:n])})
    d = load_source(cfg("parquet", path=_write(table, tmp_path / "a.parquet")))
    np.testing.assert_array_equal(d.x, mnist.x[:n])
    np.testing.assert_array_equal(d.y, mnist.y[:n])


def test_parquet_hf_struct_and_directory(mnist, tmp_path):
    import pyarrow as pa
    for part, rows in (("00000", range(0, 10)), ("00001", range(10, 25))):
        img = pa.array([{"bytes": _png(_u8(mnist, i)), "path": None} for i in rows],
                       pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        _write(pa.table({"image": img, "label": pa.array(mnist.y[list(rows)])}),
               tmp_path / f"train-{part}.parquet")
    d = load_source(cfg("parquet", path=str(tmp_path)))
    np.testing.assert_array_equal(d.x, mnist.x[:25])
    np.testing.assert_array_equal(d.y, mnist.y[:25])


def test_parquet_flat_and_nested_pixel_lists(mnist, tmp_path):
    import pyarrow as pa
    n = 30
    u8 = np.stack([_u8(mnist, i) for i in range(n)])
    flat = pa.table({"pixels": pa.array(list(u8.reshape(n, -1)), pa.list_(pa.uint8())),
                     "digit": pa.array(mnist.y[:n])})
    d = load_source(cfg("parquet", path=_write(flat, tmp_path / "flat.parquet"),
                        image_column="pixels", label_column="digit"))
    np.testing.assert_array_equal(d.x, mnist.x[:n])
    np.testing.assert_array_equal(d.y, mnist.y[:n])
    # Nested float rows (H, W, 3) in [0, 1], no label column (default name tolerated).
    rgb = np.repeat(mnist.x[:n, 0, :, :, None], 3, axis=3)
    nested = pa.table({"image": pa.array(rgb.tolist(), pa.list_(pa.list_(pa.list_(pa.float32()))))})
    d = load_source(cfg("parquet", path=_write(nested, tmp_path / "nested.parquet")))
    assert d.y is None and d.x.shape == (n, 3, 28, 28)
    np.testing.assert_array_equal(d.x[:, 2], mnist.x[:n, 0])


def test_parquet_flat_rgb_is_hwc(tmp_path):
    import pyarrow as pa
    hwc = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    p = _write(pa.table({"image": pa.array(list(hwc.reshape(3, -1)), pa.list_(pa.uint8()))}),
               tmp_path / "rgb.parquet")
    d = load_source(cfg("parquet", path=p, channels=3))
    np.testing.assert_array_equal(d.x, hwc.transpose(0, 3, 1, 2).astype(np.float32) / 255)


def test_parquet_missing_columns(tmp_path):
    import pyarrow as pa
    p = _write(pa.table({"img": pa.array([[0] * 16], pa.list_(pa.uint8())), "cls": [1]}),
               tmp_path / "t.parquet")
    with pytest.raises(DataError) as e:
        load_source(cfg("parquet", path=p))
    assert "'image'" in str(e.value) and "t.parquet" in str(e.value)
    assert "img" in str(e.value) and "cls" in str(e.value)
    with pytest.raises(DataError, match=r"'target'.*img, cls"):
        load_source(cfg("parquet", path=p, image_column="img", label_column="target"))
    d = load_source(cfg("parquet", path=p, image_column="img", label_column=None))
    assert d.y is None and d.x.shape == (1, 1, 4, 4)


def test_parquet_mixed_sizes_names_row(tmp_path):
    import pyarrow as pa
    rows = [[0] * 16, [0] * 16, [0] * 16, [0] * 25]
    p = _write(pa.table({"image": pa.array(rows, pa.list_(pa.uint8()))}), tmp_path / "m.parquet")
    with pytest.raises(DataError, match="row 3"):
        load_source(cfg("parquet", path=p))
    pngs = [_png(np.zeros((4, 4), np.uint8)), _png(np.zeros((5, 4), np.uint8))]
    p = _write(pa.table({"image": pa.array(pngs, pa.binary())}), tmp_path / "b.parquet")
    with pytest.raises(DataError, match="row 1"):
        load_source(cfg("parquet", path=p))


def test_non_finite_rejected(tmp_path):
    import pyarrow as pa
    rows = [[0.5] * 4, [0.5, float("nan"), 0.5, 0.5]]
    p = _write(pa.table({"image": pa.array(rows, pa.list_(pa.float32()))}), tmp_path / "n.parquet")
    with pytest.raises(DataError, match="NaN"):
        load_source(cfg("parquet", path=p))


@pytest.mark.parametrize("bad,msg", [(np.inf, "non-finite"), (None, "no samples")])
def test_every_source_is_checked(monkeypatch, bad, msg):
    # The final checks in load_source apply whatever a loader returns.
    import gan_core.data.digits as digits
    x = np.zeros((0, 1, 8, 8), np.float32) if bad is None else np.full((2, 1, 8, 8), bad, np.float32)
    monkeypatch.setattr(digits, "load_digits", lambda: ArrayData(x, None, "image", "fake"))
    with pytest.raises(DataError, match=msg):
        load_source(cfg("sklearn_digits"))


# ---------------------------------------------------------------- transforms

def test_preprocess_shapes_range_channels():
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 8, 8), dtype=np.float32)
    y = preprocess_images(x, 8, 1)
    assert y.dtype == np.float32 and y.shape == (4, 1, 8, 8)
    np.testing.assert_allclose(y, x * 2 - 1, atol=1e-6)
    y3 = preprocess_images(x, 8, 3)
    assert y3.shape == (4, 3, 8, 8)
    np.testing.assert_array_equal(y3[:, 0], y3[:, 2])
    rgb = rng.random((2, 3, 6, 6), dtype=np.float32)
    g = preprocess_images(rgb, 6, 1)
    lum = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    np.testing.assert_allclose(g[:, 0], lum * 2 - 1, atol=1e-5)
    for size in (4, 16, 28):  # down and up
        z = preprocess_images(rng.random((3, 3, 20, 20), dtype=np.float32), size, 3)
        assert z.shape == (3, 3, size, size) and z.min() >= -1 and z.max() <= 1
    np.testing.assert_allclose(preprocess_images(np.ones((1, 1, 9, 9), np.float32), 4, 1), 1.0, atol=1e-6)
    np.testing.assert_allclose(to_unit_range(y), x, atol=1e-6)
    assert to_unit_range(np.array([-3.0, 3.0])).tolist() == [0.0, 1.0]
    t = to_unit_range(torch.tensor([-1.0, 0.0, 2.0]))
    assert isinstance(t, torch.Tensor) and t.tolist() == [0.0, 0.5, 1.0]


def test_resize_preserves_mean():
    d = load_source(cfg("sklearn_digits"))
    x = d.x[:200]
    up = to_unit_range(preprocess_images(x, 16, 1))
    assert up.shape == (200, 1, 16, 16)
    assert abs(up.mean() - x.mean()) / x.mean() < 0.02
    down = to_unit_range(preprocess_images(up, 8, 1))
    assert abs(down.mean() - x.mean()) / x.mean() < 0.02


def test_downsampling_is_antialiased():
    # Noise averaged over ~8x8 pixels has std ~0.3/8; point sampling keeps ~0.3/2.
    x = np.random.default_rng(0).random((4, 1, 32, 32), dtype=np.float32)
    assert to_unit_range(preprocess_images(x, 4, 1)).std() < 0.05


def test_preprocess_points():
    p = preprocess_points(np.arange(6, dtype=np.float64).reshape(3, 2))
    assert p.dtype == np.float32 and p.shape == (3, 2)
    assert preprocess_points(np.zeros(5)).shape == (5, 1)
