"""Text-to-image GAN-CLS: the caption tokenizer and encoder, captions reaching G and D of every
family, the matching-aware D loss on the right pairs, GAN-INT interpolation, the config checks,
and a short training in which the caption steers what G draws."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from gan_core.config import ConfigError, LossConfig, load_config
from gan_core.losses import get_loss
from gan_core.models import build_models
from gan_core.models.conditional import FollowedTextEncoder
from gan_core.models.layers import Generator
from gan_core.text import TextEncoder, decode, encode
from gan_core.training import GANTraining, make_optimizers

FAMILIES = {
    "mlp": ["model.family=mlp", "data.image_size=8"],
    "digit_cnn": ["model.family=digit_cnn", "data.image_size=28"],
    "dcgan": ["model.family=dcgan", "data.image_size=16"],
}
SMALL = ["model.z_dim=8", "model.g_width=16", "model.d_width=16", "model.depth=2",
         "model.text_max_len=16", "data.captions_per_image=1", "model.text_dim=8",
         "model.cond_dim=4", "train.batch_size=8"]


def cfg_for(family, d_cond, *extra):
    return load_config(None, [*FAMILIES[family], *SMALL, f"model.d_cond={d_cond}", *extra])


def tokens(captions, max_len=16):
    return torch.as_tensor(encode(captions, max_len))


def change(a, b):
    """The largest change from a to b relative to a's scale (DCGAN starts with tiny outputs)."""
    return ((a - b).abs().max() / a.abs().max()).item()


def test_encode_round_trip():
    caps = ["A Red Bird, 2 wings.", "it's a small-ish dog", "x"]
    t = encode(caps, 20)
    assert t.shape == (3, 20) and t.dtype == np.int64
    assert decode(t) == [c.lower() for c in caps]
    assert (t[2, 1:] == 0).all() and (t[1] > 0).all()  # padding exactly after the text
    assert t.min() >= 0 and t.max() == 41  # 41 characters, 0 is padding
    assert encode(["abc"], 3).tolist() == [[1, 2, 3]]


@pytest.mark.parametrize("captions, message", [
    (["ok", ""], r"caption 1 is empty"),
    (["ok", "far too long"], r"caption 1 \('far too long'\) has 12 characters, more than max_len=8"),
    (["a bird!?", "ok"], r"caption 0 \('a bird!\?'\) has characters outside the vocabulary: "
                         r"\['!', '\?'\]"),
    (["tab\there"], r"caption 0 .* \['\\t'\]"),
])
def test_encode_names_the_bad_caption(captions, message):
    with pytest.raises(ValueError, match=message):
        encode(captions, 8)


def test_encoder_shape_and_padding_invariance():
    torch.manual_seed(0)
    enc = TextEncoder(5, dim=16)
    caps = ["a bird", "a small red bird", "sixteen chars ok"]  # the last fills max_len=16
    short, long = enc(tokens(caps, 16)), enc(tokens(caps, 40))
    assert short.shape == (3, 5)
    assert torch.allclose(short, long, atol=1e-6), (short - long).abs().max()
    # the embedding reads the text: a changed character or word moves it, and only its own
    other = enc(tokens(["a bire", "a small red cat", "sixteen chars ok"], 16))
    assert ((other - short).abs().amax(1) > 1e-4).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="text must be"):
        enc(torch.ones(4, dtype=torch.long))


@pytest.mark.parametrize("d_cond", ["projection", "concat"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_text_reaches_both_networks(family, d_cond):
    cfg = cfg_for(family, d_cond)
    torch.manual_seed(0)
    G, D = build_models(cfg)
    size = cfg.data.image_size
    t0, t1 = tokens(["a red bird"] * 4), tokens(["nine white dogs"] * 4)
    x = torch.rand(4, 1, size, size) * 2 - 1
    if d_cond == "projection":  # starts as the unconditional D: the text projection is zero
        assert torch.equal(D(x, t0), D(x, t1)) and torch.equal(D(x, t0), D.base(x))
        nn.init.normal_(D.embed.out.weight)
    out0, out1 = D(x, t0), D(x, t1)
    assert out0.shape == (4,)
    assert change(out0, out1) > 1e-4, "the text does not change D's output"
    # G embeds captions with a frozen copy of D's encoder, refreshed after each D step
    assert isinstance(D.embed, TextEncoder) and isinstance(G.embed, FollowedTextEncoder)
    assert all(not p.requires_grad for p in G.embed.encoder.parameters())
    assert not set(map(id, G.parameters())) & set(map(id, D.parameters()))
    G.embed.follow(D.embed)
    z = G.sample_z(4, torch.Generator().manual_seed(1))
    G.eval()
    a, b = G(z, t0), G(z, t1)
    assert a.shape == (4, 1, size, size)
    assert change(a, b) > 1e-4, "the text does not change G's output"
    assert G.num_classes == 0  # samplers must not draw class labels for a text G


@pytest.mark.parametrize("d_cond", ["projection", "concat"])
def test_class_conditional_parameter_names_are_unchanged(d_cond):
    G, D = build_models(load_config(None, [*FAMILIES["dcgan"], "model.num_classes=10",
                                           f"model.d_cond={d_cond}"]))
    for net in (G, D):
        keys = list(net.state_dict())
        assert [k for k in keys if not k.startswith("base.")] == ["embed.weight"]
        assert net.state_dict()["embed.weight"].shape[0] == 10


class _ProbeG(Generator):
    """x = 2c with c the condition (mixed by GAN-INT): the sample shows its condition."""

    z_dim = 1

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, z, y, mix=None):
        return 2 * _condition(y, mix)[:, None] * self.scale


class _ProbeD(nn.Module):
    """score = -(x - c)^2: the score of each (sample, condition) pair is a number by hand."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.ones(()))

    def forward(self, x, y, mix=None):
        return -(x[:, 0] - _condition(y, mix)) ** 2 * self.a


def _condition(y, mix):
    c = y.double()
    return c if mix is None else mix[1] * c + (1 - mix[1]) * mix[0].double()


def _mean_sq(values):
    return sum(v * v for v in values) / len(values)


def test_gan_cls_terms_are_computed_on_the_right_pairs():
    """With probe networks each term is a number worked out by hand (WGAN scores, lr 0)."""
    G, D = _ProbeG(), _ProbeD()
    opt_g, opt_d = (torch.optim.SGD(m.parameters(), lr=0.0) for m in (G, D))
    loss = LossConfig(name="wgan", mismatch_weight=0.25, interp_weight=2.0)
    tr = GANTraining(G, D, opt_g, opt_d, loss)
    real = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    y = torch.tensor([10, 100, 1000])
    out = tr.step(real, None, y)
    d_real = -_mean_sq([1 - 10, 2 - 100, 3 - 1000])
    d_wrong = -_mean_sq([1 - 1000, 2 - 10, 3 - 100])  # sample i with the condition of sample i-1
    d_fake = -_mean_sq([10, 100, 1000])  # a fake 2c judged with its own c
    assert out["d_real"].item() == pytest.approx(d_real)
    assert out["d_wrong"].item() == pytest.approx(d_wrong)
    assert out["d_fake"].item() == pytest.approx(d_fake)
    # (1 - w) * (fake - real) + w * (wrong - real)
    assert out["d_loss"].item() == pytest.approx(0.75 * (d_fake - d_real) + 0.25 * (d_wrong - d_real))
    # GAN-INT: conditions halfway to the previous sample's, 505, 55, 550, in G and in D
    assert out["g_loss"].item() == pytest.approx(-d_fake + 2.0 * _mean_sq([505, 55, 550]))


def _small_mlp_text(*extra):
    return load_config(None, ["model.family=mlp", "data.image_size=4", "model.z_dim=4",
                              "model.g_width=16", "model.d_width=16", "model.depth=2",
                              "model.g_norm=none", "model.d_norm=none", "model.text_max_len=12", "data.captions_per_image=1",
                              "model.text_dim=8", "model.cond_dim=4", *extra])


def test_d_loss_matches_a_manual_computation_on_the_same_modules():
    cfg = _small_mlp_text("loss.mismatch_weight=0.5")
    torch.manual_seed(0)
    G, D = build_models(cfg)
    nn.init.normal_(D.embed.out.weight)  # make the projection see the text from the start
    D_ref = copy.deepcopy(D)
    opt_g, opt_d = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (G, D))
    tr = GANTraining(G, D, opt_g, opt_d, cfg.loss)
    real = torch.rand(6, 1, 4, 4) * 2 - 1
    y = tokens(["left", "right", "up", "down", "a dot", "two dots"], 12)
    with torch.no_grad():
        fake = G(G.sample_z(6, torch.Generator().manual_seed(5)), y)
    out = tr.step(real, torch.Generator().manual_seed(5), y)

    s_rr, s_fr, s_rw = D_ref(real, y), D_ref(fake, y), D_ref(real, y.roll(1, 0))
    bce = get_loss("nonsaturating").d
    expected = 0.5 * bce(s_rr, s_fr) + 0.5 * bce(s_rr, s_rw)
    assert out["d_loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out["d_wrong"].item() == pytest.approx(torch.sigmoid(s_rw).mean().item(), rel=1e-6)
    expected.backward()  # and D's update followed that loss: one SGD step by hand
    for p, p_ref in zip(D.parameters(), D_ref.parameters()):
        assert torch.allclose(p, p_ref - 0.1 * p_ref.grad, atol=1e-6)


def _plain_conditional_step(G, D, opt_g, opt_d, real, y, gen):
    """The class-conditional step before GAN-CLS, written out: the reference for w = 0."""
    loss = get_loss("nonsaturating")
    with torch.no_grad():
        fake = G(G.sample_z(len(real), gen), y)
    opt_d.zero_grad(set_to_none=True)
    loss.d(D(real, y), D(fake, y)).backward()
    opt_d.step()
    if isinstance(G.embed, FollowedTextEncoder):  # as GANTraining does after a D step
        G.embed.follow(D.embed)
    for p in D.parameters():
        p.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    loss.g(D(G(G.sample_z(len(real), gen), y), y)).backward()
    opt_g.step()
    for p in D.parameters():
        p.requires_grad_(True)


@pytest.mark.parametrize("condition", ["text", "class"])
def test_zero_mismatch_weight_is_the_plain_conditional_step(condition):
    extra = ["model.text_max_len=12", "data.captions_per_image=1"] if condition == "text" else ["model.num_classes=4"]
    cfg = load_config(None, [*FAMILIES["dcgan"], "model.z_dim=8", "model.g_width=8",
                             "model.d_width=8", "model.text_dim=8", "model.cond_dim=4", *extra])
    real = torch.rand(4, 1, 16, 16) * 2 - 1  # dcgan at 16 px: BatchNorm in G and D
    y = tokens(["a", "b", "c", "d"], 12) if condition == "text" else torch.tensor([0, 1, 2, 3])

    def run(mismatch_weight, plain=False):
        torch.manual_seed(0)
        G, D = build_models(cfg)
        opt_g, opt_d = make_optimizers(G, D, cfg.train)
        gen = torch.Generator().manual_seed(1)
        for _ in range(2):
            if plain:
                _plain_conditional_step(G, D, opt_g, opt_d, real, y, gen)
            else:
                loss = LossConfig(mismatch_weight=mismatch_weight)
                GANTraining(G, D, opt_g, opt_d, loss).step(real, gen, y)
        return [t.clone() for net in (G, D) for t in net.state_dict().values()]

    reference = run(0.0, plain=True)
    assert all(torch.equal(a, b) for a, b in zip(run(0.0), reference))
    assert not all(torch.equal(a, b) for a, b in zip(run(0.5), reference))


@pytest.mark.parametrize("d_cond", ["projection", "concat"])
@pytest.mark.parametrize("condition", ["text", "class"])
def test_gan_int_mix_ends_are_the_plain_conditions(condition, d_cond):
    extra = ["model.num_classes=5", "model.text_max_len=0", "data.captions_per_image=1"] if condition == "class" else []
    cfg = cfg_for("dcgan", d_cond, *extra)
    torch.manual_seed(0)
    G, D = build_models(cfg)
    G.eval(), D.eval()
    if d_cond == "projection":
        last = D.embed.out if condition == "text" else D.embed
        nn.init.normal_(last.weight)
    if condition == "text":
        G.embed.follow(D.embed)
    if condition == "text":
        y, y2 = tokens(["a red bird", "a dog", "two cats"]), tokens(["blue", "one fish", "a cow"])
    else:
        y, y2 = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 0])
    z = G.sample_z(3, torch.Generator().manual_seed(1))
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        for net, inp in ((G, z), (D, x)):
            assert torch.equal(net(inp, y, (y2, 1.0)), net(inp, y))
            assert torch.equal(net(inp, y, (y2, 0.0)), net(inp, y2))
            half = net(inp, y, (y2, 0.5))
            assert change(half, net(inp, y)) > 1e-3 and change(half, net(inp, y2)) > 1e-3


@pytest.mark.parametrize("regulariser", [[], ["loss.r1_gamma=1", "loss.r1_interval=1"],
                                         ["loss.name=wgan", "loss.gp_weight=10"]])
@pytest.mark.parametrize("d_cond", ["projection", "concat"])
def test_every_parameter_gets_a_gradient(d_cond, regulariser):
    """Under DDP a parameter left out of a backward breaks the all-reduce: with the mismatched
    term, GAN-INT and each regulariser, every G and D parameter must be in the last backward."""
    cfg = cfg_for("dcgan", d_cond, "loss.mismatch_weight=0.5", "loss.interp_weight=1",
                  *regulariser)
    torch.manual_seed(0)
    G, D = build_models(cfg)
    opt_g, opt_d = make_optimizers(G, D, cfg.train)
    tr = GANTraining(G, D, opt_g, opt_d, cfg.loss)
    y = tokens(["a", "bb", "a c", "dd d"])
    out = tr.step(torch.rand(4, 1, 16, 16) * 2 - 1, torch.Generator().manual_seed(1), y)
    assert all(torch.isfinite(v) for v in out.values()), out
    assert {"d_wrong", "g_loss"} <= set(out) and ("r1" in out) == ("loss.r1_gamma=1" in regulariser)
    # (G's copy of D's text encoder is frozen: only D's loss trains it)
    assert [n for n, p in G.named_parameters() if p.requires_grad and p.grad is None] == []
    # D's last backward was the R1 one where there is R1, else the D loss (G's phase leaves it)
    assert [n for n, p in D.named_parameters() if p.grad is None] == []
    assert all(p.requires_grad for p in D.parameters())


@pytest.mark.parametrize("d_cond", ["projection", "concat"])
def test_a_short_training_follows_the_caption(d_cond):
    """4x4 images whose left or right half is bright, captioned "left" / "on the left" or
    "right" / "on the right"; after 250 steps G must draw the side its caption names."""
    torch.set_num_threads(1)
    cfg = _small_mlp_text(f"model.d_cond={d_cond}", "model.g_width=32", "model.d_width=32",
                          "model.cond_dim=8", "model.text_dim=16",
                          "loss.mismatch_weight=0.5", "loss.interp_weight=0.5",
                          "train.lr_g=2e-3", "train.lr_d=2e-3")
    caps = ["left", "on the left", "right", "on the right"]
    text, side = tokens(caps, 12), torch.tensor([1.0, 1.0, -1.0, -1.0])  # +1: left half bright
    columns = torch.tensor([1.0, 1.0, -1.0, -1.0])
    torch.manual_seed(0)
    G, D = build_models(cfg)
    opt_g, opt_d = make_optimizers(G, D, cfg.train)
    tr = GANTraining(G, D, opt_g, opt_d, cfg.loss)
    gen = torch.Generator().manual_seed(1)
    for _ in range(250):
        idx = torch.randint(0, 4, (32,), generator=gen)
        real = side[idx, None, None, None] * columns * 0.8 + 0.1 * torch.randn(32, 1, 4, 4, generator=gen)
        tr.step(real.clamp(-1, 1), gen, text[idx])
    G.eval()
    z = G.sample_z(200, torch.Generator().manual_seed(3))
    with torch.no_grad():  # the same latents for every caption
        drawn = [G(z, text[c].expand(200, -1)) for c in range(4)]
    left_brighter = [((x[..., :2] - x[..., 2:]).mean((1, 2, 3)) > 0).float().mean().item() for x in drawn]
    assert left_brighter[0] >= 0.95 and left_brighter[1] >= 0.95, left_brighter
    assert left_brighter[2] <= 0.05 and left_brighter[3] <= 0.05, left_brighter


@pytest.mark.parametrize("overrides, key", [
    (["model.text_max_len=16", "data.captions_per_image=1", "model.num_classes=10"], "model.text_max_len"),
    (["model.text_max_len=16", "data.captions_per_image=1", "model.pack=2"], "model.pack"),
    (["model.text_max_len=16", "data.captions_per_image=1", "data.source=ring", "model.family=mlp"], "model.text_max_len"),
    (["model.text_max_len=-1"], "model.text_max_len"),
    (["model.text_max_len=16", "data.captions_per_image=1", "model.text_dim=0"], "model.text_dim"),
    (["loss.mismatch_weight=0.5"], "loss.mismatch_weight"),
    (["loss.interp_weight=1"], "loss.interp_weight"),
    (["model.text_max_len=16", "data.captions_per_image=1", "loss.mismatch_weight=1"], "loss.mismatch_weight"),
    (["model.text_max_len=16", "data.captions_per_image=1", "loss.mismatch_weight=-0.1"], "loss.mismatch_weight"),
    (["model.text_max_len=16", "data.captions_per_image=1", "loss.interp_weight=-1"], "loss.interp_weight"),
])
def test_bad_text_configs_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert e.value.key == key


def test_good_gan_cls_configs_load():
    for extra in (["model.text_max_len=16", "data.captions_per_image=1"], ["model.num_classes=10"]):
        cfg = load_config(None, [*extra, "loss.mismatch_weight=0.5", "loss.interp_weight=1"])
        assert (cfg.loss.mismatch_weight, cfg.loss.interp_weight) == (0.5, 1.0)


@pytest.mark.parametrize("d_cond", ["projection", "concat"])
def test_g_follows_d_text_encoder_after_each_d_step(d_cond):
    """G's caption embedding is D's encoder (trained by the matching-aware loss) plus G's own
    projection: a step leaves G's frozen copy equal to D's updated encoder, resume included."""
    cfg = cfg_for("dcgan", d_cond, "loss.mismatch_weight=0.5")
    torch.manual_seed(0)
    G, D = build_models(cfg)
    opt_g, opt_d = make_optimizers(G, D, cfg.train)
    tr = GANTraining(G, D, opt_g, opt_d, cfg.loss)
    before = [p.clone() for p in D.embed.parameters()]
    tr.step(torch.rand(4, 1, 16, 16) * 2 - 1, torch.Generator().manual_seed(1), tokens(["a", "bb", "a c", "dd d"]))
    assert not all(torch.equal(a, b) for a, b in zip(before, D.embed.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(G.embed.encoder.parameters(), D.embed.parameters()))
    proj = G.embed.proj.weight.clone()
    assert proj.requires_grad and G.embed.proj.weight.grad is not None  # G's loss trains its projection
