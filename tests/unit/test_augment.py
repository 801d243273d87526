"""gan_core.augment (DiffAugment): each transform against its definition, gradients through it,
seeded reproducibility, the config checks, and that GANTraining's D sees only augmented images."""
import pytest
import torch
import torch.nn.functional as F

from gan_core.augment import _TRANSFORMS, cutout, diff_augment, translation
from gan_core.config import AUGMENT_POLICIES, ConfigError, load_config
from gan_core.models import build_models
from gan_core.training import GANTraining, make_optimizers


def shifted(x, dy, dx):
    """x moved down by dy and right by dx, zero-filled: out[i, j] = x[i - dy, j - dx]."""
    h, w = x.shape[-2:]
    p = F.pad(x, [abs(dx), abs(dx), abs(dy), abs(dy)])
    return p[..., abs(dy) - dy: abs(dy) - dy + h, abs(dx) - dx: abs(dx) - dx + w]


def test_policies_named_in_config_are_the_implemented_ones():
    assert set(AUGMENT_POLICIES) == set(_TRANSFORMS)


def test_translation_moves_each_sample_by_its_own_offset_within_an_eighth_of_the_side():
    torch.manual_seed(0)
    x = torch.randn(400, 3, 16, 16) + 5  # no zeros inside, so a shift is unambiguous
    out = translation(x)
    assert out.shape == x.shape
    seen = set()
    for i in range(len(x)):  # 16 * 0.125 = 2: offsets in [-2, 2] on each axis
        hits = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                if torch.equal(out[i], shifted(x[i], -dy, -dx))]
        assert len(hits) == 1, f"sample {i} is no zero-filled shift of its input"
        seen.add(hits[0])
    assert len(seen) == 25  # every offset is drawn, independently per sample


def test_cutout_zeroes_one_square_of_half_the_side_and_keeps_the_rest():
    torch.manual_seed(0)
    x = torch.rand(300, 2, 8, 8) + 1
    out = cutout(x)
    zero = out == 0
    assert torch.equal(zero[:, 0], zero[:, 1])  # the same square on every channel
    assert torch.equal(out[~zero], x[~zero])
    for m in zero[:, 0]:
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4  # at most 4x4, clipped at the border
        assert m.sum() == len(rows) * len(cols)  # a rectangle: the square's visible part
        assert len(rows) == rows[-1] - rows[0] + 1 and len(cols) == cols[-1] - cols[0] + 1
    # the share cut out, averaged over positions: near (4*4)/(8*8) less what hangs over the edge
    assert 0.15 < zero[:, 0].float().mean() < 0.25


def test_gradients_flow_through_both_transforms():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 8, 8, requires_grad=True)
    out = diff_augment(x, ["translation", "cutout"])
    out.sum().backward()
    # each input pixel's gradient counts how often it lands in the output: 0 or 1 here
    assert set(x.grad.unique().tolist()) <= {0.0, 1.0}
    assert x.grad.sum() == (out != 0).sum()


def test_same_seed_same_augmentation_and_channels_last_kept():
    x = torch.rand(8, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(3)
    a = diff_augment(x, ["translation", "cutout"])
    torch.manual_seed(3)
    b = diff_augment(x, ["translation", "cutout"])
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert a.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("overrides, message", [
    (["loss.diffaugment=translation,colour"], "unknown value 'colour'; choose one of translation, cutout"),
    (["data.source=grid", "model.family=mlp", "loss.diffaugment=translation"], "toy source 'grid'"),
])
def test_config_rejects_unknown_policies_and_toys(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert info.value.key == "loss.diffaugment" and message in str(info.value)


def test_d_sees_only_augmented_images_and_g_still_learns():
    cfg = load_config(None, ["model.family=dcgan", "data.image_size=8", "model.z_dim=8",
                             "model.g_width=8", "model.d_width=8",
                             "loss.diffaugment=translation,cutout"])
    torch.manual_seed(0)
    G, D = build_models(cfg)
    seen = []
    D.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    tr = GANTraining(G, D, *make_optimizers(G, D, cfg.train), cfg.loss, global_batch=8)
    real = torch.rand(8, 1, 8, 8) + 1  # no zeros: a cut-out square shows as zeros
    g0 = [p.detach().clone() for p in G.parameters()]
    tr.step(real, torch.Generator().manual_seed(1))
    assert len(seen) == 3  # D phase: real, fake; G phase: fake
    assert all((s == 0).any(dim=(1, 2, 3)).all() for s in seen)  # every sample lost a square
    assert not torch.equal(seen[0], real)
    assert all(not torch.equal(p, q) for p, q in zip(G.parameters(), g0))
