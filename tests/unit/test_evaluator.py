"""The evaluator network (digit classifier behind the image metrics) and its training."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_core.evaluator_training import (accuracy, augment_batch, noisy_background, recalibrate_batchnorm,
                                         split_indices, train_classifier)
from gan_core.metrics.features import FeatureAdapter
from gan_core.models.evaluator import DigitClassifier
from tests.conftest import MNIST_DIR

needs_mnist = pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"{MNIST_DIR} not present")


@pytest.fixture(scope="module")
def mnist():
    from gan_core.config import DataConfig
    from gan_core.data import load_source

    d = load_source(DataConfig(source="mnist", path=str(MNIST_DIR)))
    return d.x, d.y


@pytest.mark.parametrize("size", [16, 28, 32])
def test_shapes_for_any_input_size(size):
    torch.manual_seed(0)
    net = DigitClassifier().eval()
    x = torch.rand(5, 1, size, size) * 2 - 1
    assert net.prepare(x).shape == (5, 1, 28, 28)
    with torch.no_grad():
        logits, feats = net(x), net.features(x)
        f2, l2 = net.features_and_logits(x)
    assert logits.shape == (5, net.num_classes) == (5, 10)
    assert feats.shape == (5, net.num_features) == (5, 128)
    assert (feats >= 0).all()  # after the ReLU
    torch.testing.assert_close(f2, feats)
    torch.testing.assert_close(l2, logits)


def test_prepare_leaves_28x28_untouched_and_resizes_others():
    net = DigitClassifier()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert net.prepare(x) is x
    # A constant image stays constant through the (antialiased) resize, in either direction.
    for size in (16, 32, 56):
        out = net.prepare(torch.full((2, 1, size, size), -0.5))
        torch.testing.assert_close(out, torch.full((2, 1, 28, 28), -0.5))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        net.prepare(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        net.prepare(torch.zeros(28, 28))


def test_torchmetrics_takes_it_as_a_custom_feature_extractor():
    tm = pytest.importorskip("torchmetrics.image.fid")
    torch.manual_seed(0)
    net = DigitClassifier().eval()
    feats = FeatureAdapter(net, "features")
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(feats(x), net.features(x).double())
    # num_features spares torchmetrics its 3-channel probe; images go in as-is (floats in [-1, 1])
    fid = tm.FrechetInceptionDistance(feature=feats, normalize=False)
    fid.update(torch.rand(8, 1, 28, 28) * 2 - 1, real=True)
    fid.update(x.repeat(2, 1, 1, 1), real=False)
    assert torch.isfinite(fid.compute())


def test_split_is_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 110, 120, 130, 140])
    tr, va = split_indices(y, 0.2, seed=3)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(y)
    np.testing.assert_array_equal(np.bincount(y[va]), np.round(0.2 * np.bincount(y)))
    tr2, va2 = split_indices(y, 0.2, seed=3)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, split_indices(y, 0.2, seed=4)[1])


def test_augmentation_keeps_shape_range_and_mass():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0  # a bar well inside the frame: +-2 px shifts keep it there
    out = augment_batch(x, g)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1 + 1e-6
    assert not torch.equal(out, x)
    # rotation/shift move ink around; zoom within 8% changes its amount by at most ~17%
    ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ((ratio > 0.8) & (ratio < 1.25)).all()


def test_noisy_background_on_about_half_the_images():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(400, 1, 8, 8)
    out = noisy_background(x, g)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.4 < changed < 0.6
    assert out[(out != x).flatten(1).any(1)].mean() < 0.35  # a background, not ink


def test_recalibrated_batchnorm_matches_the_data():
    torch.manual_seed(0)
    net = DigitClassifier()
    x = torch.rand(64, 1, 28, 28) * 2 - 1
    recalibrate_batchnorm(net, x, batch_size=16)
    assert not net.training
    first = net.body[1]  # BatchNorm2d after the first conv
    with torch.no_grad():
        h = net.body[0](x)
    torch.testing.assert_close(first.running_mean, h.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert first.momentum == 0.1  # restored


def test_rejects_bad_inputs():
    x = np.random.default_rng(0).random((100, 1, 28, 28), dtype=np.float32)
    y = np.arange(100) % 10
    with pytest.raises(ValueError, match="labels for 100 images"):
        train_classifier(x, y[:99], epochs=1, log=None)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        train_classifier(x[:, 0], y, epochs=1, log=None)
    with pytest.raises(ValueError, match=r"in \[0, 10\)"):
        train_classifier(x, y + 1, epochs=1, log=None)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        train_classifier(x * 2 - 1, y, epochs=1, log=None)
    with pytest.raises(ValueError, match="integers"):
        train_classifier(x, y.astype(np.float32), epochs=1, log=None)
    with pytest.raises(ValueError, match="labels for 100 images"):
        accuracy(DigitClassifier(), x, y[:50])


@needs_mnist
def test_tiny_training_run_beats_chance_and_is_deterministic(mnist):
    x, y = mnist[0][:600], mnist[1][:600]
    kw = dict(epochs=2, batch_size=32, seed=1, threads=1, log=None)
    rng_before = torch.get_rng_state()
    m1, met1 = train_classifier(x, y, **kw)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is left alone
    assert not m1.training
    assert met1["num_train"] + met1["num_val"] == 600 and met1["num_val"] == pytest.approx(120, abs=5)
    assert met1["epochs"] == 2
    assert met1["val_accuracy"] >= 0.70, met1
    # held-out images the run never saw, through the public accuracy()
    assert accuracy(m1, mnist[0][5000:5500], mnist[1][5000:5500]) >= 0.70
    m2, met2 = train_classifier(x, y, **kw)
    assert met2["val_accuracy"] == met1["val_accuracy"]
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k


@needs_mnist
def test_noisy_backgrounds_do_not_fool_the_trained_classifier(mnist):
    """Early GAN samples have grey, noisy backgrounds; a classifier trained without that
    augmentation reads many of them wrong (about 88% here, against 98% clean)."""
    x, y = mnist[0][:1500], mnist[1][:1500]
    model, _ = train_classifier(x, y, epochs=3, batch_size=64, seed=1, threads=1, log=None)
    hx, hy = mnist[0][8000:9000], mnist[1][8000:9000]
    noisy = noisy_background(torch.from_numpy(hx), torch.Generator().manual_seed(3), share=1.0).numpy()
    clean_acc, noisy_acc = accuracy(model, hx, hy), accuracy(model, noisy, hy)
    assert noisy_acc >= 0.93 and noisy_acc >= clean_acc - 0.03, (clean_acc, noisy_acc)
