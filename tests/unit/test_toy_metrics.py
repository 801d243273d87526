import math

import numpy as np
import pytest

from gan_core.metrics import METRICS, evaluate, register
from gan_core.metrics.toy import gaussian_1d_metrics, mode_metrics

GRID_STD = 0.05


def grid_centres():
    v = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    return np.stack(np.meshgrid(v, v, indexing="ij"), axis=-1).reshape(-1, 2)


def sample_mixture(centres, std, n, rng):
    idx = rng.integers(0, len(centres), size=n)
    return centres[idx] + std * rng.standard_normal((n, centres.shape[1]))


def test_grid_mixture_samples_capture_all_modes():
    rng = np.random.default_rng(0)
    c = grid_centres()
    x = sample_mixture(c, GRID_STD, 2500, rng)
    m = mode_metrics(x, c, GRID_STD)
    assert m["modes"] == 25
    assert m["high_quality"] > 0.98
    # P(|z| <= 3) for a 2-D standard normal is 1 - exp(-4.5) = 0.9889
    assert m["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert 0.0 <= m["kl"] < 0.03
    assert m["num_samples"] == 2500
    assert isinstance(m["modes"], int)


def test_single_mode_collapse():
    rng = np.random.default_rng(1)
    c = grid_centres()
    x = c[7] + GRID_STD * 0.5 * rng.standard_normal((500, 2))
    m = mode_metrics(x, c, GRID_STD)
    assert m["modes"] == 1
    assert m["high_quality"] == pytest.approx(1.0)
    assert m["kl"] == pytest.approx(math.log(25), rel=1e-9)


def test_samples_far_from_all_centres():
    c = grid_centres()
    x = np.full((100, 2), 1.0)  # (1, 1) is ~1.41 from the nearest centre
    m = mode_metrics(x, c, GRID_STD)
    assert m["high_quality"] == 0.0
    assert m["modes"] == 0
    assert m["kl"] == float("inf")


def test_nearest_centre_rule():
    std = 0.05  # 3 std = 0.15
    c = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]])
    # within 3 std of centre 0 (distance 0.07) but nearer to centre 1 (0.03)
    x = np.tile([[0.07, 0.0]], (10, 1))
    m = mode_metrics(x, c, std)
    assert m["modes"] == 1
    assert m["high_quality"] == 1.0
    # all mass on centre 1: KL = log(3); had it counted for centre 0 too it would be smaller
    assert m["kl"] == pytest.approx(math.log(3))
    # one sample nearer to centre 0 adds that mode
    x2 = np.vstack([x, [[0.01, 0.0]]])
    assert mode_metrics(x2, c, std)["modes"] == 2


def test_kl_hand_computed():
    std = 0.1
    c = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.array([[0.0, 0.0], [0.01, 0.0], [10.0, 0.0], [0.0, 10.0], [50.0, 50.0]])
    m = mode_metrics(x, c, std)
    p = np.array([2, 1, 1]) / 4
    expected = float(np.sum(p * np.log(3 * p)))
    assert expected == pytest.approx(0.5 * math.log(1.5) + 0.5 * math.log(0.75))
    assert m["kl"] == pytest.approx(expected, rel=1e-12)
    assert m["kl"] == pytest.approx(0.0588915, abs=1e-6)
    assert m["modes"] == 3
    assert m["high_quality"] == pytest.approx(4 / 5)
    assert m["num_samples"] == 5


def test_uniform_counts_give_zero_kl():
    c = grid_centres()
    x = np.repeat(c, 4, axis=0)
    m = mode_metrics(x, c, GRID_STD)
    assert m["kl"] == pytest.approx(0.0, abs=1e-12)
    assert m["modes"] == 25


def test_gaussian_1d_matching_target():
    rng = np.random.default_rng(2)
    x = rng.normal(4.0, 0.5, size=(10_000, 1))
    m = gaussian_1d_metrics(x, 4.0, 0.5)
    assert m["w1"] < 0.03
    assert m["mean_error"] < 0.03
    assert m["std_error"] < 0.03
    # (N,) and (N, 1) agree
    assert gaussian_1d_metrics(x[:, 0], 4.0, 0.5) == m


def test_gaussian_1d_shifted_target():
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 0.5, size=(10_000, 1))
    m = gaussian_1d_metrics(x, 4.0, 0.5)
    assert m["w1"] == pytest.approx(1.0, abs=0.05)
    assert m["mean_error"] == pytest.approx(1.0, abs=0.05)
    assert m["std_error"] < 0.03


def test_gaussian_1d_exact_quantiles_give_zero_w1():
    from scipy.stats import norm

    n = 1000
    x = norm.ppf((np.arange(n) + 0.5) / n, loc=4.0, scale=0.5)
    rng = np.random.default_rng(4)
    m = gaussian_1d_metrics(rng.permutation(x), 4.0, 0.5)
    assert m["w1"] == pytest.approx(0.0, abs=1e-12)


def test_gaussian_1d_rejects_2d_and_handles_nan():
    with pytest.raises(ValueError):
        gaussian_1d_metrics(np.zeros((10, 2)), 4.0, 0.5)
    m = gaussian_1d_metrics(np.array([4.0, np.nan]), 4.0, 0.5)
    assert m["w1"] == float("inf")


def test_evaluate_dispatch_matches_direct_call():
    rng = np.random.default_rng(5)
    c = grid_centres()
    x = sample_mixture(c, GRID_STD, 300, rng)
    assert evaluate("modes", x, centres=c, std=GRID_STD) == mode_metrics(x, c, GRID_STD)
    y = rng.normal(4.0, 0.5, size=(200, 1))
    assert evaluate("gaussian_1d", y, mean=4.0, std=0.5) == gaussian_1d_metrics(y, 4.0, 0.5)


def test_evaluate_unknown_name_lists_known():
    with pytest.raises(ValueError) as exc:
        evaluate("nope", np.zeros((3, 2)))
    msg = str(exc.value)
    assert "nope" in msg and "modes" in msg and "gaussian_1d" in msg


def test_register_decorator():
    @register("_test_dummy")
    def dummy(samples, k=1):
        return {"n": len(samples) * k}

    try:
        assert evaluate("_test_dummy", [1, 2, 3], k=2) == {"n": 6}
        with pytest.raises(ValueError):
            register("_test_dummy")(lambda s: {})
    finally:
        METRICS.pop("_test_dummy", None)
