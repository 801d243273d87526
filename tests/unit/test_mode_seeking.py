"""loss.mode_seeking (MSGAN): the penalty by hand, G's loss with it term by term, and a G that
spreads its images over z more than without it."""
import pytest
import torch

from gan_core.config import ConfigError, load_config
from gan_core.losses import mode_seeking_penalty
from tests.unit.test_training import BATCH, batches, make

CONDITIONAL = ["model.num_classes=10", "model.cond_dim=4"]


def test_penalty_by_hand():
    # halves 0.5 apart in every pixel, latents 1 apart: 0.5 image distance per latent distance
    fake = torch.cat([torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.5)])
    z = torch.cat([torch.zeros(2, 3), torch.ones(2, 3)])
    assert mode_seeking_penalty(fake, z).item() == pytest.approx(1 / (0.5 + 1e-5))
    # an odd batch leaves its last sample unpaired
    odd = mode_seeking_penalty(torch.cat([fake, torch.full((1, 1, 2, 2), 9.0)]), torch.cat([z, z[:1]]))
    assert odd.item() == pytest.approx(1 / (0.5 + 1e-5))
    # a G that ignores z: the penalty is as large as the epsilon allows
    assert mode_seeking_penalty(torch.zeros(4, 1, 2, 2), z).item() == pytest.approx(1e5)


@pytest.mark.parametrize("weight", [1.0, 3.0])
def test_g_loss_adds_the_weighted_penalty_over_pairs_drawn_for_one_condition(weight):
    tr = make(*CONDITIONAL, f"loss.mode_seeking={weight}")
    tr.opt_g = torch.optim.SGD(tr.G.parameters(), lr=1.0)  # the update is minus the gradient
    real, y = batches(1)[0], torch.arange(BATCH) % 10
    before = [p.detach().clone() for p in tr.G.parameters()]
    # the same step by hand: sample i + N/2 drawn for sample i's label
    paired = torch.cat([y[:BATCH // 2], y[:BATCH // 2]])
    G = tr.G
    z = G.sample_z(BATCH, torch.Generator().manual_seed(3), "cpu")
    fake = G(z, paired)
    penalty = mode_seeking_penalty(fake, z)
    loss = tr.loss.g(tr.D(fake, paired)) + weight * penalty
    expected = torch.autograd.grad(loss, list(G.parameters()))
    out = tr._phase_g(real, torch.Generator().manual_seed(3), y)
    assert out["mode_seeking"].item() == pytest.approx(penalty.item(), rel=1e-5)
    for b, p, g in zip(before, G.parameters(), expected):
        assert torch.allclose(b - p.detach(), g, rtol=1e-4, atol=1e-6)


def _spread_after_g_steps(weight: float, steps: int = 100) -> float:
    """Image distance per latent distance over fixed pairs (one label per pair) after `steps`
    G updates against a fixed D."""
    tr = make(*CONDITIONAL, f"loss.mode_seeking={weight}")
    real, y = batches(1)[0], torch.arange(BATCH) % 10
    for i in range(steps):
        tr._phase_g(real, torch.Generator().manual_seed(i), y)
    z = tr.G.sample_z(64, torch.Generator().manual_seed(9), "cpu")
    labels = torch.arange(32) % 10
    with torch.no_grad():
        return 1 / mode_seeking_penalty(tr.G(z, torch.cat([labels, labels])), z).item()


def test_mode_seeking_spreads_g_over_its_latents():
    # measured: 0.061 without, 0.083 with (0.040 at initialisation)
    assert _spread_after_g_steps(1.0) > 1.25 * _spread_after_g_steps(0.0)


def test_config_refuses_a_negative_weight_and_srgan():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["loss.mode_seeking=-1"])
    assert e.value.key == "loss.mode_seeking"
    with pytest.raises(ConfigError) as e:
        load_config(None, ["loss.mode_seeking=1", "model.family=srgan", "data.image_size=32"])
    assert e.value.key == "loss.mode_seeking" and "srgan" in str(e.value)
