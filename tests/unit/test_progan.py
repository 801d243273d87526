"""ProGAN: the growth schedule, faded reals and G outputs, exact resume across a phase boundary
with the optimizer reset, minibatch stddev, equalized learning rate, pixel norm, config checks."""
import dataclasses
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gan_core.config import ConfigError, load_config
from gan_core.data import ArrayData, check_data
from gan_core.data.transforms import pad_images
from gan_core.losses import drift_penalty
from gan_core.models import build_models
from gan_core.models.layers import MinibatchStdDev
from gan_core.models.progan_layers import EqualizedConv2d, pixel_norm
from gan_core.progressive import (ProgressiveGANTraining, ProgressiveSchedule, Stage, at_resolution,
                                  fade_reals, schedule_for)
from gan_core.training import make_optimizers

BATCH = 4
SMALL = ["model.family=progan", "data.image_size=16", "model.z_dim=8", "model.g_width=4",
         "model.d_width=4", "loss.name=wgan", "loss.gp_weight=10", "loss.drift=0.001",
         "progressive.fade_images=16", "progressive.stable_images=8", f"train.batch_size={BATCH}",
         "train.ema_half_life_images=50", "train.beta1=0", "train.beta2=0.99"]


def test_schedule_stages_by_images_seen():
    s = ProgressiveSchedule(final_resolution=32, fade_images=100, stable_images=50)
    assert s.levels == 3 and s.growth_images == 50 + 3 * 150
    assert s.at(0) == Stage(0, 1.0, 0) and s.at(49) == Stage(0, 1.0, 0)
    assert s.at(50) == Stage(1, 0.0, 1)  # the 8x8 block starts fading in
    assert s.at(75) == Stage(1, 0.25, 1) and s.at(149) == Stage(1, 0.99, 1)
    assert s.at(150) == Stage(1, 1.0, 2) and s.at(199) == Stage(1, 1.0, 2)
    assert s.at(200) == Stage(2, 0.0, 3) and s.at(380) == Stage(3, 0.3, 5)
    assert s.at(450) == Stage(3, 1.0, 6) and s.at(10**9) == Stage(3, 1.0, 6)
    assert [s.at(i).resolution for i in (0, 50, 200, 350, 10**9)] == [4, 8, 16, 32, 32]


def test_fade_reals_interpolates_between_resolutions():
    x = torch.randn(2, 1, 16, 16)
    coarse = F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="nearest")  # 4x4, blown up
    fine = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")  # 8x8, blown up
    assert torch.allclose(fade_reals(x, Stage(1, 0.0, 1)), coarse, atol=1e-6)
    assert torch.allclose(fade_reals(x, Stage(1, 1.0, 2)), fine, atol=1e-6)
    assert torch.allclose(fade_reals(x, Stage(1, 0.25, 1)), 0.75 * coarse + 0.25 * fine, atol=1e-6)
    assert torch.equal(fade_reals(x, Stage(2, 1.0, 4)), x)
    assert torch.allclose(at_resolution(x, 8), fine)


def test_generator_fades_like_the_reals_and_serves_the_final_resolution():
    cfg = load_config(None, SMALL)
    torch.manual_seed(0)
    G, D = build_models(cfg)
    z = torch.randn(BATCH, 8)
    assert (G.level, G.alpha) == (2, 1.0) and G(z).shape == (BATCH, 1, 16, 16)  # a fresh G: final
    outs = {}
    for a in (0.0, 0.3, 1.0):
        G.set_stage(1, a)
        outs[a] = G(z)
    assert torch.allclose(outs[0.3], 0.7 * outs[0.0] + 0.3 * outs[1.0], atol=1e-5)
    # at 8x8 the full-size output is made of 2x2 blocks; at alpha 0 of 4x4 blocks
    assert torch.equal(outs[1.0], at_resolution(outs[1.0], 8))
    assert torch.allclose(outs[0.0], at_resolution(outs[0.0], 4), atol=1e-6)
    assert not torch.allclose(outs[1.0], at_resolution(outs[1.0], 4), atol=1e-3)
    assert D(outs[1.0]).shape == (BATCH,)


@pytest.mark.parametrize("level, alpha", [(0, 1.0), (1, 0.5), (1, 1.0), (2, 0.5), (2, 1.0)])
def test_every_parameter_gets_a_gradient_at_every_stage(level, alpha):
    # DDP's hooks need a gradient for every parameter at every step (no find_unused_parameters)
    cfg = load_config(None, SMALL)
    G, D = build_models(cfg)
    G.set_stage(level, alpha)
    D.set_stage(level, alpha)
    D(G(torch.randn(BATCH, 8))).sum().backward()
    missing = [n for m in (G, D) for n, p in m.named_parameters() if p.grad is None]
    assert missing == []
    idle = G.blocks[level:] if level < 2 else []
    assert all(float(p.grad.abs().sum()) == 0 for b in idle for p in b.parameters())
    assert float(G.to_rgb[level].weight.grad.abs().sum()) > 0


def _training(cfg):
    torch.manual_seed(cfg.seed)
    G, D = build_models(cfg)
    opt_g, opt_d = make_optimizers(G, D, cfg.train)
    return ProgressiveGANTraining(G, D, opt_g, opt_d, cfg.loss, cfg.train.n_critic,
                                  cfg.train.ema_half_life_images, BATCH, schedule=schedule_for(cfg))


def _steps(tr, first: int, last: int) -> list:
    out = []
    for i in range(first, last):
        torch.manual_seed(100 + i)  # GP mixing weights, as the worker seeds by epoch
        real = torch.rand(BATCH, 1, 16, 16, generator=torch.Generator().manual_seed(i)) * 2 - 1
        tr.step(real, torch.Generator().manual_seed(10_000 + i))
        out.append((tr.stage.resolution, tr.completed_resolution,
                    int(tr.opt_d.state[tr.opt_d.param_groups[0]["params"][0]]["step"])))
    return out


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # as the checkpoint loads


def _flat(tr) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for m in (tr.G, tr.D, tr.G_ema) for p in m.parameters()])


@pytest.mark.parametrize("stop", [2, 3, 5])  # mid 4x4; at the 4x4 -> 8x8 boundary; mid fade-in
def test_resume_is_exact_and_restores_optimizer_state_of_its_phase(stop):
    cfg = load_config(None, SMALL)
    whole = _training(cfg)
    trace = _steps(whole, 0, 10)
    # 8 stable 4x4 images = 2 steps; the optimizer state restarts (step 1) at 8x8, once
    assert [t[0] for t in trace] == [4, 8, 8, 8, 8, 8, 8, 16, 16, 16]
    assert [t[1] for t in trace] == [None, 4, None, None, None, None, None, 8, None, None]
    assert [t[2] for t in trace] == [1, 2, 1, 2, 3, 4, 5, 6, 1, 2]

    first = _training(cfg)
    _steps(first, 0, stop)
    state = _roundtrip(first.state_dict())
    resumed = _training(load_config(None, SMALL))
    resumed.load_state_dict(state)
    # the Adam moments restored belong to the resolution of the last step before the checkpoint
    assert resumed.opt_resolution == whole.schedule.at((stop - 1) * BATCH).resolution
    assert resumed.stage == whole.schedule.at(stop * BATCH)
    assert _steps(resumed, stop, 10) == trace[stop:]
    assert torch.equal(_flat(resumed), _flat(whole))


def test_minibatch_stddev_groups_and_shape():
    layer = MinibatchStdDev(group=2)
    x = torch.randn(6, 3, 4, 4)
    y = layer(x)
    assert y.shape == (6, 4, 4, 4) and torch.equal(y[:, :3], x)
    # sample i is in group i % 3: samples (0, 3), (1, 4), (2, 5)
    for i in range(3):
        pair = x[[i, i + 3]]
        want = ((pair - pair.mean(0)).square().mean(0) + 1e-8).sqrt().mean()
        assert torch.allclose(y[i, 3], want.expand(4, 4)) and torch.allclose(y[i + 3, 3], want.expand(4, 4))
    x2 = x.clone()
    x2[1] += 5  # changes group 1 only
    y2 = layer(x2)
    assert torch.equal(y2[[0, 2, 3, 5], 3], y[[0, 2, 3, 5], 3]) and not torch.equal(y2[1, 3], y[1, 3])
    with pytest.raises(ValueError, match="batch of 5 is not divisible by the group size 2"):
        layer(torch.randn(5, 3, 4, 4))


def test_equalized_learning_rate_scales_weights_at_run_time():
    convs = [EqualizedConv2d(c, 8, 3) for c in (2, 64)]
    x = torch.randn(2, 2, 5, 5)
    c = convs[0]
    assert c.scale == pytest.approx(math.sqrt(2) / math.sqrt(2 * 9))
    assert torch.allclose(c(x), F.conv2d(x, c.weight * c.scale, c.bias, padding=1))
    assert 0.8 < float(c.weight.detach().std()) < 1.2  # stored weights are N(0, 1)
    # one Adam step moves every stored weight by about lr, so the effective weights of both
    # layers change by the same fraction of their own scale, whatever the fan-in
    changes = []
    for conv in convs:
        before = conv.weight.detach().clone()
        opt = torch.optim.Adam(conv.parameters(), lr=1e-3)
        conv(torch.randn(2, conv.weight.shape[1], 5, 5)).square().sum().backward()
        opt.step()
        changes.append(float(((conv.weight.detach() - before) * conv.scale).abs().mean() / conv.scale))
    assert changes[0] == pytest.approx(1e-3, rel=0.05) and changes[1] == pytest.approx(1e-3, rel=0.05)


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    y = pixel_norm(torch.randn(3, 16, 4, 4) * 7)
    assert torch.allclose(y.square().mean(1), torch.ones(3, 4, 4), atol=1e-4)


def test_drift_term_joins_the_critic_loss():
    tr = _training(load_config(None, SMALL))
    out = tr.step(torch.rand(BATCH, 1, 16, 16) * 2 - 1)
    assert "drift" in out and out["drift"] > 0
    assert float(drift_penalty(torch.tensor([1.0, -3.0]))) == 5.0


@pytest.mark.parametrize("override, key", [
    ("data.image_size=28", "data.image_size"), ("data.image_size=4", "data.image_size"),
    ("train.batch_size=6", "train.batch_size"), ("model.mbstd_group=0", "model.mbstd_group"),
    ("progressive.fade_images=0", "progressive.fade_images"), ("model.num_classes=10", "model.num_classes"),
])
def test_bad_progressive_configs_name_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(None, [*SMALL, override])


def test_padding_and_a_schedule_longer_than_the_run():
    x = np.ones((2, 1, 28, 28), np.float32)
    padded = pad_images(x, 32)
    assert padded.shape == (2, 1, 32, 32) and padded[:, :, 2:30, 2:30].min() == 1
    assert padded.sum() == x.sum()
    with pytest.raises(ConfigError, match="'data.pad_to'"):
        pad_images(x, 16)
    data = ArrayData(np.zeros((32, 1, 16, 16), np.float32), None, "image", "zeros")
    cfg = load_config(None, [*SMALL, "train.epochs=1", "ray.num_workers=2"])
    with pytest.raises(ConfigError, match="'train.epochs'.*takes 56 images.*set at least 2"):
        check_data(cfg, data)  # 8 + 2 x (16 + 8) images to grow; an epoch is 32
    check_data(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=2)), data)
