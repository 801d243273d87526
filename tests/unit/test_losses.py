"""gan_core.losses against values computed by hand, stability, saturation and the penalties."""
import math

import pytest
import torch

from gan_core.losses import LOSSES, get_loss, gradient_penalty, r1_penalty

REAL = [2.0, -1.0]
FAKE = [0.5, -3.0]


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def mean(xs):
    return sum(xs) / len(xs)


def t(xs):
    return torch.tensor(xs, dtype=torch.float64)


# expectations written out from the definitions, independent of the implementation
BCE_D = mean([-math.log(sig(r)) for r in REAL]) + mean([-math.log(1 - sig(f)) for f in FAKE])
EXPECTED = {
    "minimax": (BCE_D, mean([math.log(1 - sig(f)) for f in FAKE])),
    "nonsaturating": (BCE_D, mean([-math.log(sig(f)) for f in FAKE])),
    "wgan": (mean(FAKE) - mean(REAL), -mean(FAKE)),
    "hinge": (mean([max(0.0, 1 - r) for r in REAL]) + mean([max(0.0, 1 + f) for f in FAKE]),
              -mean(FAKE)),
    "lsgan": (0.5 * mean([(r - 1) ** 2 for r in REAL]) + 0.5 * mean([f**2 for f in FAKE]),
              0.5 * mean([(f - 1) ** 2 for f in FAKE])),
}


def test_every_loss_is_covered():
    assert set(LOSSES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loss_values_by_hand(name):
    pair = get_loss(name)
    d_exp, g_exp = EXPECTED[name]
    assert pair.d(t(REAL), t(FAKE)).item() == pytest.approx(d_exp, rel=1e-12, abs=1e-12)
    assert pair.g(t(FAKE)).item() == pytest.approx(g_exp, rel=1e-12, abs=1e-12)


def test_hand_values_are_the_documented_numbers():
    # a second, literal anchor so a wrong formula in both places cannot pass
    assert EXPECTED["wgan"] == (-1.75, 1.25)
    assert EXPECTED["hinge"][0] == pytest.approx(1.0 + 0.75)  # relu(1-2)=0, relu(2)=2 -> 1; 1.5, 0 -> .75
    assert EXPECTED["lsgan"] == (pytest.approx(0.5 * 2.5 + 0.5 * 4.625), pytest.approx(0.5 * 8.125))
    # (log(1+e^-2) + log(1+e)) / 2 + (log(1+e^0.5) + log(1+e^-3)) / 2
    assert BCE_D == pytest.approx(0.720095 + 0.511332, abs=1e-5)


def test_hinge_is_zero_beyond_the_margin():
    assert get_loss("hinge").d(t([1.5, 3.0]), t([-1.0, -2.0])).item() == 0.0


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_logits_stay_finite(name, dtype):
    pair = get_loss(name)
    real = torch.tensor([1e4, -1e4, 3e4], dtype=dtype, requires_grad=True)
    fake = torch.tensor([-1e4, 1e4, -3e4], dtype=dtype, requires_grad=True)
    d, g = pair.d(real, fake), pair.g(fake)
    assert torch.isfinite(d) and torch.isfinite(g)
    (d + g).backward()
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()


def test_bce_losses_with_huge_logits_have_the_right_limits():
    big = torch.tensor([1e4])
    # D perfectly right: loss -> 0; perfectly wrong: loss = 2e4 (softplus(x) ~ x)
    assert get_loss("nonsaturating").d(big, -big).item() == 0.0
    assert get_loss("nonsaturating").d(-big, big).item() == pytest.approx(2e4)
    assert get_loss("nonsaturating").g(-big).item() == pytest.approx(1e4)
    assert get_loss("minimax").g(-big).item() == 0.0


def _logit_grad(g_loss, fake_value):
    fake = torch.full((4,), fake_value, dtype=torch.float64, requires_grad=True)
    g_loss(fake).backward()
    return fake.grad.abs().mean().item()


def test_minimax_saturates_when_d_rejects_fakes_but_nonsaturating_does_not():
    mm = _logit_grad(get_loss("minimax").g, -10.0)
    ns = _logit_grad(get_loss("nonsaturating").g, -10.0)
    # d/dx log(1 - sigmoid(x)) = -sigmoid(x) ~ 4.5e-5; d/dx -log sigmoid(x) = sigmoid(x) - 1 ~ -1
    assert mm == pytest.approx(sig(-10.0) / 4, rel=1e-9)
    assert ns == pytest.approx((1 - sig(-10.0)) / 4, rel=1e-9)
    assert ns > 1000 * mm
    # and G's step direction is the same for both (raise the fake logits)
    for name in ("minimax", "nonsaturating"):
        fake = torch.full((2,), -10.0, requires_grad=True)
        get_loss(name).g(fake).backward()
        assert (fake.grad < 0).all()


def test_get_loss_unknown_lists_the_names():
    with pytest.raises(KeyError) as info:
        get_loss("nope")
    msg = str(info.value)
    assert "nope" in msg
    for name in EXPECTED:
        assert name in msg


def _linear_critic(w):
    return lambda x: x.flatten(1) @ w


def test_gradient_penalty_of_a_linear_critic_is_exact():
    w = torch.tensor([1.0, 2.0, 2.0])  # ||w|| = 3
    D = _linear_critic(w)
    torch.manual_seed(0)
    for _ in range(3):  # any interpolates: the gradient is w everywhere
        real, fake = torch.randn(5, 3), torch.randn(5, 3)
        gp = gradient_penalty(D, real, fake)
        assert gp.item() == 4.0  # (3 - 1)^2


def test_gradient_penalty_on_images_and_its_gradient_reaches_the_critic():
    w = torch.zeros(2 * 2 * 2)
    w[0], w[5] = 0.6, 0.8  # ||w|| = 1: no penalty
    w.requires_grad_(True)
    D = _linear_critic(w)
    real, fake = torch.randn(4, 2, 2, 2), torch.randn(4, 2, 2, 2)
    gp = gradient_penalty(D, real, fake)
    assert gp.item() == pytest.approx(0.0, abs=1e-12)
    w2 = (w.detach() * 2).requires_grad_(True)  # ||w|| = 2 -> penalty 1, d/dw = 2(|w|-1) w/|w| = w
    gp2 = gradient_penalty(_linear_critic(w2), real, fake)
    assert gp2.item() == pytest.approx(1.0, rel=1e-6)
    gp2.backward()
    torch.testing.assert_close(w2.grad, w2.detach(), rtol=1e-5, atol=1e-6)


def test_gradient_penalty_interpolates_between_real_and_fake():
    seen = []

    def D(x):
        seen.append(x.detach().clone())
        return x.sum(1)

    real, fake = torch.zeros(64, 1), torch.ones(64, 1)
    torch.manual_seed(0)
    gradient_penalty(D, real, fake)
    x = seen[0]
    assert (x >= 0).all() and (x <= 1).all()
    assert x.std() > 0.1  # one random eps per sample, not one for all


def test_r1_penalty_of_a_linear_critic_is_squared_norm():
    w = torch.tensor([1.0, 2.0, 2.0])
    real = torch.randn(6, 3).requires_grad_(True)
    assert r1_penalty(_linear_critic(w)(real), real).item() == pytest.approx(9.0, rel=1e-6)


def test_r1_penalty_is_a_mean_over_the_batch_and_differentiable():
    # D(x) = sum(a * x^2): grad = 2 a x, ||grad||^2 = 4 a^2 sum x^2
    a = torch.tensor(1.5, requires_grad=True)
    real = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    logits = (a * real.pow(2)).sum(1)
    r1 = r1_penalty(logits, real)
    assert r1.item() == pytest.approx(4 * 1.5**2 * (1 + 4) / 2)
    r1.backward()  # create_graph=True: the penalty trains D
    assert a.grad.item() == pytest.approx(8 * 1.5 * 5 / 2)
