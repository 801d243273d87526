"""PacGAN packing: D judges `pack` consecutive samples jointly, inside D.forward, so the training
loop, the losses and the regularisers see N/pack logits and need no change."""
import pytest
import torch

from gan_core.config import ConfigError, load_config
from gan_core.models import build_models
from gan_core.models.dcgan import DCGANDiscriminator
from gan_core.models.mlp import MLPDiscriminator
from gan_core.training import GANTraining, make_optimizers
from tests.conftest import REPO

GRID = str(REPO / "tune_configs" / "grid_mlp.yaml")
SMALL_DCGAN = ["model.family=dcgan", "data.image_size=8", "data.channels=1", "model.z_dim=8",
               "model.g_width=8", "model.d_width=8", "train.batch_size=8"]


def n_params(m):
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------- the discriminators


@pytest.mark.parametrize("pack", [1, 2, 4])
def test_dcgan_d_gives_one_logit_per_pack(pack):
    torch.manual_seed(0)
    D = DCGANDiscriminator(3, 16, 8, "batch", pack=pack)
    assert D(torch.randn(8, 3, 16, 16)).shape == (8 // pack,)
    assert D.net[0].in_channels == 3 * pack


@pytest.mark.parametrize("pack", [1, 2, 4])
def test_mlp_d_gives_one_logit_per_pack(pack):
    D = MLPDiscriminator((2,), 16, 2, "none", pack=pack)
    assert D(torch.randn(8, 2)).shape == (8 // pack,)
    D = MLPDiscriminator((1, 4, 4), 16, 2, "none", pack=pack)  # flattened images
    assert D(torch.randn(8, 1, 4, 4)).shape == (8 // pack,)


@pytest.mark.parametrize("norm", ["none", "spectral", "batch"])
def test_packing_only_widens_the_first_layer(norm):
    for make in (lambda p: DCGANDiscriminator(3, 16, 8, norm, pack=p),
                 lambda p: MLPDiscriminator((2,), 16, 3, norm, pack=p)):
        one, four = make(1), make(4)
        w_one, w_four = one.net[0].weight, four.net[0].weight
        # only the first weight grows: its input width times pack
        assert w_four.shape[1] == 4 * w_one.shape[1]
        assert w_four.shape[0] == w_one.shape[0] and w_four.shape[2:] == w_one.shape[2:]
        assert n_params(four) - n_params(one) == w_one.numel() * 3


def test_dcgan_packing_concatenates_consecutive_samples_along_channels():
    torch.manual_seed(0)
    D = DCGANDiscriminator(3, 16, 8, "none", pack=2).eval()
    x = torch.randn(6, 3, 16, 16)
    by_hand = torch.cat([torch.cat([x[2 * i], x[2 * i + 1]], 0)[None] for i in range(3)])
    assert torch.equal(by_hand, x.view(3, 6, 16, 16))  # samples (0,1), (2,3), (4,5)
    torch.testing.assert_close(D(x), D.net(by_hand).squeeze(1), rtol=0, atol=0)
    # order matters: swapping samples across packs changes the logits, within a pack it changes
    # the channel order, so D is a function of the ordered pack
    assert not torch.allclose(D(x[[0, 2, 1, 3, 4, 5]]), D(x))


def test_dcgan_packing_with_batchnorm_matches_the_hand_packed_forward():
    torch.manual_seed(0)
    D = DCGANDiscriminator(1, 8, 8, "batch", pack=4).train()
    x = torch.randn(8, 1, 8, 8)
    torch.testing.assert_close(D(x), D.net(x.view(2, 4, 8, 8)).squeeze(1), rtol=0, atol=0)


def test_mlp_packing_concatenates_consecutive_samples():
    torch.manual_seed(0)
    D = MLPDiscriminator((2,), 16, 2, "none", pack=2)
    x = torch.randn(6, 2)
    by_hand = torch.stack([torch.cat([x[2 * i], x[2 * i + 1]]) for i in range(3)])
    torch.testing.assert_close(D(x), D.net(by_hand).squeeze(1), rtol=0, atol=0)
    D = MLPDiscriminator((1, 2, 2), 16, 2, "none", pack=3)
    x = torch.randn(6, 1, 2, 2)
    torch.testing.assert_close(D(x), D.net(x.reshape(2, 12)).squeeze(1), rtol=0, atol=0)


@pytest.mark.parametrize("D", [DCGANDiscriminator(1, 8, 8, "none", pack=4),
                               MLPDiscriminator((2,), 8, 2, "none", pack=4)])
def test_batch_not_divisible_by_pack_raises(D):
    x = torch.randn(6, 1, 8, 8) if isinstance(D, DCGANDiscriminator) else torch.randn(6, 2)
    with pytest.raises(ValueError, match="pack=4"):
        D(x)


def test_pack_below_one_raises():
    with pytest.raises(ValueError, match="pack"):
        DCGANDiscriminator(1, 8, 8, "none", pack=0)
    with pytest.raises(ValueError, match="pack"):
        MLPDiscriminator((2,), 8, 2, "none", pack=0)


def test_build_wires_model_pack():
    _, D = build_models(load_config(GRID, ["model.pack=4"]))
    assert D.pack == 4 and D(torch.randn(8, 2)).shape == (2,)
    _, D = build_models(load_config(None, [*SMALL_DCGAN, "model.pack=2"]))
    assert D.pack == 2 and D(torch.randn(8, 1, 8, 8)).shape == (4,)
    _, D = build_models(load_config(None, SMALL_DCGAN))
    assert D.pack == 1


# ---------------------------------------------------------------- config


def test_pack_defaults_to_off():
    assert load_config(None).model.pack == 1


@pytest.mark.parametrize("overrides, key", [
    (["model.pack=0"], "model.pack"),
    (["model.pack=-2"], "model.pack"),
    (["model.family=digit_cnn", "data.image_size=28", "model.pack=2"], "model.pack"),
    (["train.batch_size=64", "model.pack=3"], "train.batch_size"),
])
def test_pack_config_errors(overrides, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert e.value.key == key
    if key == "train.batch_size":
        assert "model.pack=3" in str(e.value)


def test_pack_1_is_fine_for_every_family():
    load_config(None, ["model.family=digit_cnn", "data.image_size=28", "model.pack=1"])


# ---------------------------------------------------------------- training steps


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def weights_changed(a, b):
    """Every weight matrix / kernel moved (a WGAN critic's last bias gets no gradient: it cancels
    in mean(fake) - mean(real), and the penalties do not see it)."""
    return all(not torch.equal(x, y) for x, y in zip(a, b) if x.dim() >= 2)


def run_steps(cfg, real, steps=2):
    torch.manual_seed(0)
    G, D = build_models(cfg)
    opt_g, opt_d = make_optimizers(G, D, cfg.train)
    tr = GANTraining(G, D, opt_g, opt_d, cfg.loss, cfg.train.n_critic, 0.0, cfg.train.batch_size)
    g0, d0 = params(G), params(D)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        out = tr.step(real, gen)
    assert all(torch.isfinite(v) for v in out.values())
    assert weights_changed(params(G), g0) and weights_changed(params(D), d0)
    return out


@pytest.mark.parametrize("loss", [["loss.name=nonsaturating"],
                                  ["loss.name=wgan", "loss.gp_weight=10", "loss.r1_gamma=0"],
                                  ["loss.name=hinge", "loss.r1_gamma=1", "loss.r1_interval=1"]])
def test_grid_mlp_trains_with_pack_4(loss):
    cfg = load_config(GRID, ["model.pack=4", "train.batch_size=32", *loss])
    out = run_steps(cfg, torch.randn(32, 2))
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(out)


@pytest.mark.parametrize("loss", [["loss.name=nonsaturating"],
                                  ["loss.name=wgan", "loss.gp_weight=10", "model.d_norm=none"],
                                  ["loss.name=lsgan", "loss.r1_gamma=1", "loss.r1_interval=1"]])
def test_small_dcgan_trains_with_pack_4(loss):
    cfg = load_config(None, [*SMALL_DCGAN, "model.pack=4", *loss])
    run_steps(cfg, torch.rand(8, 1, 8, 8) * 2 - 1)


@pytest.mark.parametrize("path, overrides, shape", [(GRID, [], (8, 2)),
                                                     (None, SMALL_DCGAN, (8, 1, 8, 8))])
def test_wgan_gp_with_pack_2(path, overrides, shape):
    cfg = load_config(path, [*overrides, "model.pack=2", "loss.name=wgan", "loss.gp_weight=10",
                             "loss.r1_gamma=0", "train.batch_size=8", "model.d_norm=none"])
    out = run_steps(cfg, torch.rand(*shape) * 2 - 1)
    assert "gp" in out and out["gp"] >= 0


def test_gradient_penalty_takes_one_norm_per_packed_group():
    """A linear critic on packed pairs: the packed input's gradient norm is ||w|| = 3."""
    from gan_core.losses import gradient_penalty, r1_penalty

    w = torch.tensor([2.0, 1.0, 2.0, 0.0])  # acts on a pair of 2-D points, ||w|| = 3

    def critic(x):
        return x.reshape(x.shape[0] // 2, 4) @ w

    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(4.0)
    x = real.clone().requires_grad_(True)
    assert r1_penalty(critic(x), x).item() == pytest.approx(9.0)
