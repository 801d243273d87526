"""model.d_mbstd: ProGAN's minibatch-stddev map in the DCGAN discriminator, so D can judge how
varied a group of samples is, which no per-sample D can."""
import pytest
import torch
import torch.nn.functional as F

from gan_core.build import build_training
from gan_core.config import ConfigError, load_config
from gan_core.models.dcgan import DCGANDiscriminator
from gan_core.models.layers import MinibatchStdDev

SMALL = ["model.family=dcgan", "data.image_size=8", "data.channels=1", "model.z_dim=8",
         "model.g_width=8", "model.d_width=8", "train.batch_size=8"]


def test_a_logit_depends_on_its_group_and_on_no_other():
    torch.manual_seed(0)
    D = DCGANDiscriminator(1, 8, 8, "batch", mbstd_group=4).eval()  # eval: BatchNorm couples nothing
    x = torch.randn(8, 1, 8, 8)
    out = D(x)
    x2 = x.clone()
    x2[3] += 1  # groups are i % 2: sample 3 is in group 1 with 1, 5 and 7
    changed = (D(x2) - out).abs() > 1e-6
    assert changed.tolist() == [False, True, False, True, False, True, False, True]


def test_a_batch_smaller_than_the_group_is_one_group():
    x = torch.randn(2, 3, 4, 4)
    y = MinibatchStdDev(4)(x)
    want = ((x - x.mean(0)).square().mean(0) + 1e-8).sqrt().mean()
    assert torch.allclose(y[:, 3], want.expand(2, 4, 4))
    with pytest.raises(ValueError, match="a batch of 6 is not divisible by the group size 4"):
        MinibatchStdDev(4)(torch.randn(6, 3, 4, 4))


def _separation(mbstd_group: int, steps: int = 300) -> float:
    """D's accuracy at telling batches of reals (random +-1 images from a pool) from batches
    of fakes that are one real image repeated: each fake alone is a real image, drawn as
    often as any other, so only a look across samples can tell them apart."""
    torch.manual_seed(0)
    pool = torch.randint(0, 2, (512, 1, 8, 8)).float() * 2 - 1
    D = DCGANDiscriminator(1, 8, 8, "none", mbstd_group=mbstd_group)
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)

    def batches():
        real = pool[torch.randint(0, 512, (16,))]
        fake = pool[torch.randint(0, 512, (1,))].expand(16, -1, -1, -1)
        return real, fake

    for _ in range(steps):
        real, fake = batches()
        loss = (F.binary_cross_entropy_with_logits(D(real), torch.ones(16))
                + F.binary_cross_entropy_with_logits(D(fake), torch.zeros(16)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        hits = [((D(r) > 0).float().mean() + (D(f) < 0).float().mean()) / 2
                for r, f in (batches() for _ in range(50))]
    return float(torch.stack(hits).mean())


def test_only_a_d_with_the_map_tells_a_collapsed_batch_from_a_varied_one():
    assert _separation(mbstd_group=4) > 0.95
    assert _separation(mbstd_group=0) < 0.7


def test_a_self_conditioned_projection_d_with_the_map_trains_a_step():
    cfg = load_config(None, [*SMALL, "model.num_classes=4", "model.d_cond=projection",
                             "model.d_mbstd=true", "loss.mode_seeking=1", "loss.r1_gamma=1",
                             "loss.r1_interval=1"])
    tr, _ = build_training(cfg, "cpu")
    assert any(isinstance(m, MinibatchStdDev) for m in tr.D.modules())
    gen = torch.Generator().manual_seed(0)
    out = tr.step(torch.rand(8, 1, 8, 8) * 2 - 1, gen, torch.tensor([0, 1, 2, 3] * 2))
    assert {"d_loss", "g_loss", "mode_seeking", "r1"} <= set(out)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_off_by_default():
    tr, _ = build_training(load_config(None, SMALL), "cpu")
    assert not any(isinstance(m, MinibatchStdDev) for m in tr.D.modules())


@pytest.mark.parametrize("overrides, key, words", [
    (["model.family=mlp", "data.source=grid", "model.d_mbstd=true"], "model.d_mbstd", "family 'dcgan'"),
    ([*SMALL, "model.d_mbstd=true", "model.mbstd_group=3"], "train.batch_size", "mbstd_group=3"),
    ([*SMALL, "model.d_mbstd=true", "model.pack=2", "model.mbstd_group=8"], "train.batch_size",
     "packed in 2s: 4 D inputs"),
    ([*SMALL, "model.d_mbstd=true", "model.mbstd_group=0"], "model.mbstd_group", "must be > 0"),
])
def test_config_errors(overrides, key, words):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert e.value.key == key and words in str(e.value)
