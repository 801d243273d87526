"""Image metrics against hand-computed answers, with small stand-in feature nets defined here."""
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from gan_core.metrics import METRICS, evaluate
from gan_core.metrics.features import extract
from gan_core.metrics.fid import fid
from gan_core.metrics.inception_score import inception_score
from gan_core.metrics.kid import kid
from gan_core.metrics.precision_recall import precision_recall, precision_recall_features
from gan_core.metrics.sr import psnr, ssim
from gan_core.metrics.swd import swd
from gan_core.metrics.conditional import conditional_accuracy


class FlatNet(nn.Module):
    """Identity-like feature net: features = logits = the flattened image (C*H*W values)."""

    def __init__(self, d: int):
        super().__init__()
        self.num_features = d
        self.num_classes = d
        self.seen = []  # (dtype, min, max) of every input, to check what torchmetrics passes on

    def features(self, x):
        self.seen.append((x.dtype, float(x.min()), float(x.max())))
        return x.reshape(x.shape[0], -1)

    def forward(self, x):
        return self.features(x)


class ConvNet(nn.Module):
    """Fixed random 1-channel conv + linear: 16 features, 10 logits (stand-in for the classifier)."""

    num_features = 16
    num_classes = 10

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 16)
        self.head = nn.Linear(16, 10)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.3

    def features(self, x):
        h = torch.relu(self.conv(x))
        h = nn.functional.adaptive_avg_pool2d(h, 4).flatten(1)
        return torch.tanh(self.fc(h))

    def forward(self, x):
        return self.head(self.features(x))


def blobs(n, seed, size=16):
    """Smooth random images in [-1, 1]: blurred noise, (n, 1, size, size) float32."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size, size, generator=g)
    k = torch.ones(1, 1, 3, 3) / 9
    x = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), k)
    return torch.tanh(2 * x)


def gaussian_images(n, mu, var, rng):
    """(n, 1, 1, d) images whose pixels are N(mu, diag(var)) samples."""
    d = len(mu)
    return (np.asarray(mu) + np.sqrt(var) * rng.standard_normal((n, d))).reshape(n, 1, 1, d)


def exact_moments(n, mu, var, rng):
    """Samples whose sample mean is mu and unbiased sample covariance is exactly diag(var)."""
    z = rng.standard_normal((n, len(mu)))
    z -= z.mean(0)
    L = np.linalg.cholesky(np.cov(z, rowvar=False))
    z = z @ np.linalg.inv(L).T  # now cov(z) == I exactly
    return np.asarray(mu) + z * np.sqrt(var)


def frechet(mu1, var1, mu2, var2):
    mu1, var1, mu2, var2 = map(np.asarray, (mu1, var1, mu2, var2))
    return float(((mu1 - mu2) ** 2).sum() + (var1 + var2 - 2 * np.sqrt(var1 * var2)).sum())


MU1, VAR1 = [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 0.5, 1.0]
MU2, VAR2 = [1.0, 0.0, -1.0, 0.5], [2.0, 1.0, 0.5, 3.0]


# ---------------------------------------------------------------- FID

def test_fid_identical_sets_is_zero():
    net, x = ConvNet(), blobs(200, 0)
    scale = float(np.trace(np.cov(extract(net, x)[0], rowvar=False)))
    assert abs(fid(x, x, net)["fid"]) < 1e-3 * scale


def test_fid_matches_closed_form_for_exact_gaussian_moments():
    rng = np.random.default_rng(0)
    a, b = exact_moments(500, MU1, VAR1, rng), exact_moments(500, MU2, VAR2, rng)
    want = frechet(MU1, VAR1, MU2, VAR2)  # = 2.25 + sum (sqrt(v1) - sqrt(v2))^2
    assert want == pytest.approx(2.25 + 2 * (math.sqrt(2) - 1) ** 2 + (math.sqrt(3) - 1) ** 2)
    got = fid(a.reshape(-1, 1, 1, 4), b.reshape(-1, 1, 1, 4), FlatNet(4))["fid"]
    assert got == pytest.approx(want, rel=1e-4)
    # FID is invariant to a rotation of the feature space (non-diagonal covariances then)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    rot = fid((a @ q).reshape(-1, 1, 1, 4), (b @ q).reshape(-1, 1, 1, 4), FlatNet(4))["fid"]
    assert rot == pytest.approx(want, rel=1e-4)


def test_fid_of_sampled_gaussians_within_two_percent():
    rng = np.random.default_rng(1)
    a = gaussian_images(20000, MU1, VAR1, rng)
    b = gaussian_images(20000, MU2, VAR2, rng)
    got = evaluate("fid", a, real=b, net=FlatNet(4), batch_size=5000)["fid"]
    assert got == pytest.approx(frechet(MU1, VAR1, MU2, VAR2), rel=0.02)


def test_float_images_reach_the_net_unscaled_and_mode_is_restored():
    net = FlatNet(4)
    net.train()
    x = gaussian_images(50, MU1, VAR1, np.random.default_rng(2)).astype(np.float32)
    fid(x, x, net)
    kid(x, x, net, subset_size=10, subsets=2)
    inception_score(x, net, splits=5)
    # every call saw float32 values as given (negative, not cast to uint8 or rescaled by 255)
    assert all(dt == torch.float32 for dt, _, _ in net.seen)
    assert min(lo for _, lo, _ in net.seen) == pytest.approx(float(x.min()))
    assert max(hi for _, _, hi in net.seen) == pytest.approx(float(x.max()))
    assert net.training


def test_extract_shapes_dtype_and_eval_mode():
    class BNNet(ConvNet):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(16)

        def features(self, x):
            return self.bn(super().features(x))

    net = BNNet().train()
    x = blobs(30, 1).numpy()
    f1, l1 = extract(net, x, batch_size=7)
    f2, _ = extract(net, torch.as_tensor(x), batch_size=30)
    assert f1.shape == (30, 16) and l1.shape == (30, 10) and f1.dtype == np.float64
    np.testing.assert_allclose(f1, f2, atol=1e-6)  # eval mode: batch size does not matter
    assert net.training and int(net.bn.num_batches_tracked) == 0  # no BN stats updated


def test_read_only_arrays_are_read_without_a_warning():
    x = blobs(20, 1).numpy()
    x.setflags(write=False)  # as Arrow-backed batches and memory-mapped files arrive
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f, _ = extract(ConvNet(), x, batch_size=20)
    np.testing.assert_allclose(f, extract(ConvNet(), x.copy(), batch_size=20)[0])


# ---------------------------------------------------------------- KID

def test_kid_identical_sets_near_zero_and_smaller_than_shifted():
    net, x = ConvNet(), blobs(120, 0)
    same = kid(x, x, net, subset_size=60, subsets=20)
    other = kid(x, (0.5 * x + 0.4).clamp(-1, 1), net, subset_size=60, subsets=20)
    assert other["kid"] > 0
    assert abs(same["kid"]) < 0.05 * other["kid"]
    assert same == kid(x, x, net, subset_size=60, subsets=20)  # seeded
    # default subset size: 1000, or the smaller set's size (100 here) -> std 0 over subsets
    assert kid(x[:100], x, net, subsets=3)["kid_std"] > 0
    assert kid(x[:100], x[:100], net, subsets=3)["kid_std"] == pytest.approx(0.0, abs=1e-12)


def test_kid_with_full_subsets_matches_hand_computed_mmd():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((40, 3)), rng.standard_normal((40, 3)) + 0.5
    got = kid(a.reshape(40, 1, 1, 3), b.reshape(40, 1, 1, 3), FlatNet(3), subset_size=40, subsets=3)

    a32, b32 = a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
    k = lambda x, y: (x @ y.T / 3 + 1) ** 3  # noqa: E731
    m = 40
    kxx, kyy, kxy = k(a32, a32), k(b32, b32), k(a32, b32)
    want = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    assert got["kid"] == pytest.approx(want, rel=1e-9)
    assert got["kid_std"] == pytest.approx(0.0, abs=1e-12)  # every subset is the whole set


# ---------------------------------------------------------------- IS

def test_inception_score_one_class_is_one_and_ten_even_classes_is_ten():
    n = 1000
    one = np.zeros((n, 1, 1, 10), np.float32)
    one[..., 3] = 30.0  # every sample: all mass on class 3
    assert evaluate("is", one, net=FlatNet(10))["is"] == pytest.approx(1.0, abs=1e-6)

    spread = np.zeros((n, 1, 1, 10), np.float32)
    spread[np.arange(n), 0, 0, np.arange(n) % 10] = 30.0  # confident, classes equally often
    assert inception_score(spread, FlatNet(10), splits=1)["is"] == pytest.approx(10.0, rel=1e-6)
    r = inception_score(spread, FlatNet(10), splits=10)  # shuffled splits: near-even histograms
    assert 9.0 < r["is"] <= 10.0 + 1e-6 and r["is_std"] < 0.5
    assert r["is_class_entropy"] == pytest.approx(math.log(10), rel=1e-9)
    assert r["is_sample_entropy"] == pytest.approx(0.0, abs=1e-9)


def test_inception_score_parts_say_whether_diversity_or_legibility_is_missing():
    """log IS = H(y) - E H(y|x) over the whole set: hand-computed for two made-up classifiers."""
    n = 400
    x = np.zeros((n, 1, 1, 4), np.float32)
    x[: n // 2, 0, 0, 0] = 30.0  # half the samples certain of class 0
    x[n // 2:, 0, 0, :2] = 1.0  # half unsure between classes 0 and 1: p = (e, e, 1, 1) / (2e + 2)
    q = np.array([math.e, math.e, 1, 1]) / (2 * math.e + 2)
    marginal = 0.5 * np.array([1, 0, 0, 0]) + 0.5 * q
    h_y = -(marginal * np.log(marginal)).sum()
    h_yx = 0.5 * -(q * np.log(q)).sum()
    r = inception_score(x, FlatNet(4), splits=1)
    assert r["is_class_entropy"] == pytest.approx(h_y, rel=1e-6)
    assert r["is_sample_entropy"] == pytest.approx(h_yx, rel=1e-6)
    assert r["is"] == pytest.approx(math.exp(h_y - h_yx), rel=1e-5)  # one split: the whole set


# ---------------------------------------------------------------- precision / recall

def test_pr_identical_sets_give_one_one():
    net, x = ConvNet(), blobs(80, 0)
    assert precision_recall(x, x, net) == {"precision": 1.0, "recall": 1.0}


def test_pr_collapsed_generator_has_no_recall_and_copy_has_full_recall():
    net, real = ConvNet(), blobs(100, 0)
    collapsed = real[:1].repeat(100, 1, 1, 1)  # every fake sample is real[0]
    r = evaluate("pr", collapsed, real=real, net=net)
    assert r["recall"] <= 1 / 100 + 1e-12  # only real[0] itself lies in the zero-radius fake ball
    assert 0.0 <= r["precision"] <= 1.0
    assert evaluate("pr", real.clone(), real=real, net=net)["recall"] == 1.0


def test_pr_one_dimensional_worked_example():
    real = [0.0, 1.0, 2.0, 3.0]             # k=1 radii: 1, 1, 1, 1
    fake = [0.2, 0.7, 1.6, 5.0, 5.5]        # k=1 radii: 0.5, 0.5, 0.9, 0.5, 0.5
    # precision: 0.2, 0.7, 1.6 lie within 1 of a real point; 5.0, 5.5 do not -> 3/5
    # recall: 0 (0.2 away from 0.2), 1 (0.3 from 0.7), 2 (0.4 from 1.6 <= 0.9) in; 3 out -> 3/4
    assert precision_recall_features(fake, real, k=1) == pytest.approx({"precision": 0.6, "recall": 0.75})
    # k=2: real radii 2, 1, 1, 2; 5.0 lies exactly on the ball of 3 (distance 2 <= 2) -> 4/5;
    # fake radii 1.4, 0.9, 1.4, 3.4, 3.9 cover every real point -> 1
    assert precision_recall_features(fake, real, k=2) == pytest.approx({"precision": 0.8, "recall": 1.0})


# ---------------------------------------------------------------- SWD

def test_swd_same_set_zero_shift_larger_and_seeded():
    kw = dict(nhoods_per_image=32)  # 48 images of 32x32: levels 32, 16, 8
    x, y, z = blobs(48, 0, 32), blobs(48, 1, 32), blobs(48, 2, 32)
    same = swd(x, x, **kw)
    assert set(same) == {"swd", "swd_32", "swd_16", "swd_8"}
    assert same["swd"] == pytest.approx(0.0, abs=1e-9)
    floor, other = swd(x, y, **kw), swd(x, z, **kw)  # other samples of the same distribution
    shifted = z.clone()
    shifted[:24] += 0.8  # half of the images 0.8 brighter: a bimodal distribution of local means
    s = swd(x, shifted, **kw)
    assert s["swd_8"] > 2 * max(floor["swd_8"], other["swd_8"])  # the low-pass level sees it
    assert s["swd"] > 1.5 * max(floor["swd"], other["swd"])
    # the band-pass levels do not see intensity offsets at all
    assert s["swd_32"] == pytest.approx(other["swd_32"], rel=1e-4)
    assert s["swd_16"] == pytest.approx(other["swd_16"], rel=1e-4)
    # each set is standardised per level and channel: a global affine change is invisible
    assert swd(x, 0.5 * x + 0.2, **kw)["swd"] == pytest.approx(0.0, abs=1e-2)
    a, b = x[:8], y[:8]
    assert swd(a, b, seed=5) == swd(a, b, seed=5)
    assert swd(a, b, seed=5) != swd(a, b, seed=6)


# ---------------------------------------------------------------- PSNR / SSIM

def test_psnr_of_constant_offset_and_ssim_of_identity():
    t = blobs(4, 0) * 0.9  # stays within [-1, 1] after the offset
    assert psnr(t + 0.1, t)["psnr"] == pytest.approx(10 * math.log10(4 / 0.01), rel=1e-6)
    assert evaluate("psnr", t + 0.1, target=t)["psnr"] == pytest.approx(26.0206, abs=1e-4)
    assert ssim(t, t)["ssim"] == pytest.approx(1.0, abs=1e-9)
    assert evaluate("ssim", blobs(4, 1) * 0.9, target=t)["ssim"] < 0.3  # unrelated images


# ---------------------------------------------------------------- conditional accuracy

def test_cond_acc_exact_and_shuffled():
    rng = np.random.default_rng(4)
    labels = np.arange(2000) % 10
    imgs = np.zeros((2000, 1, 1, 10), np.float32)
    imgs[np.arange(2000), 0, 0, labels] = 5.0  # the net's argmax is exactly the label
    assert conditional_accuracy(imgs, labels, FlatNet(10))["cond_acc"] == 1.0
    shuffled = evaluate("cond_acc", imgs, labels=rng.permutation(labels), net=FlatNet(10))["cond_acc"]
    assert shuffled == pytest.approx(0.1, abs=0.03)


# ---------------------------------------------------------------- errors and registry

def test_errors_are_clear():
    net = ConvNet()
    x = blobs(20, 0)
    with pytest.raises(ValueError, match=r"\(20, 3, 16, 16\).*first conv takes 1 channel"):
        fid(x.repeat(1, 3, 1, 1), x, net)
    with pytest.raises(ValueError, match="KID needs at least 50 fake images, got 20"):
        kid(x, blobs(60, 1), net, subset_size=50)
    with pytest.raises(ValueError, match="FID needs at least 2"):
        fid(x[:1], x, net)
    with pytest.raises(ValueError, match="needs at least 4"):
        precision_recall(x[:3], x, net, k=3)
    with pytest.raises(ValueError, match="unknown metric 'fidd'"):
        evaluate("fidd", x, real=x, net=net)


def test_all_image_metrics_registered_beside_toys():
    assert {"fid", "kid", "is", "pr", "swd", "psnr", "ssim", "cond_acc", "modes", "gaussian_1d"} <= set(METRICS)
    assert evaluate("gaussian_1d", np.full(10, 4.0), mean=4.0, std=0.5)["mean_error"] == 0.0


def test_with_the_project_digit_classifier():
    evaluator = pytest.importorskip("gan_core.models.evaluator")
    torch.manual_seed(0)
    net = evaluator.DigitClassifier()
    x = blobs(40, 0)
    f, lg = extract(net, x)
    assert f.shape == (40, 128) and lg.shape == (40, 10)
    with pytest.warns(UserWarning, match="singular covariance"):
        assert abs(fid(x, x, net)["fid"]) < 1e-6 * max(1.0, float(np.trace(np.cov(f, rowvar=False))))
    assert evaluate("pr", x, real=x, net=net) == {"precision": 1.0, "recall": 1.0}
    assert 1.0 <= evaluate("is", x, net=net, splits=4)["is"] <= 10.0
    with pytest.raises(ValueError, match=r"cannot take.*\(40, 3, 16, 16\)"):
        extract(net, x.repeat(1, 3, 1, 1))
