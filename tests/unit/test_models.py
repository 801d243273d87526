"""gan_core.models: output shapes and ranges of every family, the unpooling layer, the digit
generator's architecture, spectral norm, and reproducible and truncated z."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gan_core.config import load_config
from gan_core.evaluation import sample
from gan_core.models import build_models, sample_shape
from gan_core.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_core.models.digit_cnn import DigitGenerator
from gan_core.models.layers import Unpool2x2, truncate

N = 3


def cfg_of(*overrides):
    return load_config(None, ["model.z_dim=8", "model.g_width=8", "model.d_width=8",
                              "model.depth=2", *overrides])


def run(G, D, n=N):
    torch.manual_seed(0)
    z = G.sample_z(n)
    x = G(z)
    return z, x, D(x)


@pytest.mark.parametrize("source,dim", [("gaussian_1d", 1), ("ring", 2), ("grid", 2)])
def test_mlp_toy_shapes(source, dim):
    cfg = cfg_of(f"data.source={source}", "model.family=mlp")
    assert sample_shape(cfg) == (dim,)
    G, D = build_models(cfg)
    z, x, logits = run(G, D)
    assert z.shape == (N, 8)
    assert x.shape == (N, dim)
    assert logits.shape == (N,)
    # toy points are unbounded: no tanh on the MLP head
    assert not any(isinstance(m, nn.Tanh) for m in G.modules())


def test_mlp_on_images_is_bounded():
    cfg = cfg_of("model.family=mlp", "data.image_size=8", "data.channels=3")
    G, D = build_models(cfg)
    _, x, logits = run(G, D)
    assert x.shape == (N, 3, 8, 8)
    assert x.abs().max() <= 1
    assert logits.shape == (N,)


def test_digit_cnn_shapes_and_range():
    cfg = cfg_of("model.family=digit_cnn", "data.image_size=28")
    G, D = build_models(cfg)
    # large z pushes the pre-sigmoid activations to saturate: the output must still be in [-1, 1]
    x = G(torch.randn(N, 8) * 100)
    assert x.shape == (N, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (N,)


@pytest.mark.parametrize("size", [8, 16, 28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_and_range(size, channels):
    cfg = cfg_of("model.family=dcgan", f"data.image_size={size}", f"data.channels={channels}",
                 "model.g_width=4", "model.d_width=4")
    G, D = build_models(cfg)
    assert isinstance(G, DCGANGenerator) and isinstance(D, DCGANDiscriminator)
    x = G(torch.randn(N, 8) * 50)
    assert x.shape == (N, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert x.std() > 0  # not a constant image
    logits = D(x)
    assert logits.shape == (N,)
    assert logits.dtype == torch.float32


def test_dcgan_fc_width_adds_one_hidden_layer_to_g_and_d():
    plain = build_models(cfg_of("model.family=dcgan", "data.image_size=28"))
    G, D = build_models(cfg_of("model.family=dcgan", "data.image_size=28", "model.fc_width=32"))
    linear = lambda m: [(l.in_features, l.out_features) for l in m.modules() if isinstance(l, nn.Linear)]
    c0 = 8 * 2  # g_width * 2^(halvings - 1): 28 -> 7 is two halvings
    assert linear(plain[0]) == [(8, c0 * 49)] and linear(G) == [(8, 32), (32, c0 * 49)]
    assert linear(plain[1]) == [(16 * 49, 1)] and linear(D) == [(16 * 49, 32), (32, 1)]
    assert any(isinstance(m, nn.BatchNorm1d) for m in D.net)
    torch.manual_seed(0)
    x = G(torch.randn(N, 8))
    assert x.shape == (N, 1, 28, 28) and D(x).shape == (N,)
    assert D.features(x).shape == (N, 32)  # what a projection D reads


def test_dcgan_without_fc_width_keeps_the_saved_state_dict_keys():
    # models registered before model.fc_width existed must still load
    G, D = build_models(cfg_of("model.family=dcgan", "data.image_size=16"))
    assert [k for k in G.state_dict() if not k.startswith("body.")] == ["fc.weight", "fc.bias"]
    assert list(D.state_dict())[-2:] == ["net.6.weight", "net.6.bias"]


@pytest.mark.parametrize("size,base,n_up", [(8, 4, 1), (16, 4, 2), (28, 7, 2), (32, 4, 3), (64, 4, 4)])
def test_dcgan_generator_layout(size, base, n_up):
    G = DCGANGenerator(z_dim=8, channels=3, size=size, width=4, norm="batch")
    assert G.base == base
    assert G.c0 == 4 * 2 ** (n_up - 1)
    ups = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == n_up
    assert ups[-1].out_channels == 3


def test_unpool_places_values_top_left_with_zeros_elsewhere():
    x = torch.arange(1.0, 1 + 2 * 3 * 2 * 3).view(2, 3, 2, 3)
    y = Unpool2x2()(x)
    assert y.shape == (2, 3, 4, 6)
    expected = torch.zeros(2, 3, 4, 6)
    for i in range(2):
        for j in range(3):
            expected[:, :, 2 * i, 2 * j] = x[:, :, i, j]
    assert torch.equal(y, expected)
    # a literal check of one channel
    one = Unpool2x2()(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
    assert torch.equal(one, torch.tensor([[[[1.0, 0, 2.0, 0],
                                            [0, 0, 0, 0],
                                            [3.0, 0, 4.0, 0],
                                            [0, 0, 0, 0]]]]))


def test_unpool_gradient_routes_back_to_the_kept_positions():
    x = torch.randn(1, 2, 3, 3, requires_grad=True)
    g = torch.randn(1, 2, 6, 6)
    Unpool2x2()(x).backward(g)
    assert torch.equal(x.grad, g[:, :, ::2, ::2])


def test_digit_generator_architecture():
    cfg = load_config(None, ["model.family=digit_cnn", "data.image_size=28", "model.g_width=64",
                             "model.z_dim=100"])
    G, _ = build_models(cfg)
    assert isinstance(G, DigitGenerator)
    assert isinstance(G.fc, nn.Linear)
    assert (G.fc.in_features, G.fc.out_features) == (100, 64 * 7 * 7)
    body = list(G.body)
    unpools = [i for i, m in enumerate(body) if isinstance(m, Unpool2x2)]
    assert len(unpools) == 2
    # each unpool is followed by LeakyReLU then a conv: (unpool, LeakyReLU, conv) x2
    for i in unpools:
        assert isinstance(body[i + 1], nn.LeakyReLU)
        assert isinstance(body[i + 2], nn.Conv2d)
    convs = [m for m in body if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(64, 32), (32, 1)]
    # trace the spatial sizes 7 -> 14 -> 28
    sizes = []
    x = G.fc(torch.randn(2, 100)).view(2, 64, 7, 7)
    for m in body:
        x = m(x)
        if isinstance(m, Unpool2x2):
            sizes.append(x.shape[-1])
    assert sizes == [14, 28]
    # sigmoid output rescaled to [-1, 1]: G(z) == 2 * sigmoid(body(fc(z))) - 1
    G.eval()
    z = torch.randn(2, 100)
    pre = G.body(G.fc(z).view(2, 64, 7, 7))
    torch.testing.assert_close(G(z), torch.sigmoid(pre) * 2 - 1)


@pytest.mark.parametrize("family,size", [("dcgan", 16), ("digit_cnn", 28)])
def test_spectral_norm_parametrizes_the_discriminator(family, size):
    cfg = cfg_of(f"model.family={family}", f"data.image_size={size}", "model.d_norm=spectral")
    torch.manual_seed(0)
    G, D = build_models(cfg)
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) >= 2
    for m in layers:
        assert parametrize.is_parametrized(m, "weight"), m
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    # G keeps its plain weights
    assert not any(parametrize.is_parametrized(m) for m in G.modules())
    # the effective weights have spectral norm ~1 after enough power iterations
    D.train()
    x = torch.randn(2, 1, size, size)
    for _ in range(30):
        D(x)
    conv = layers[0]
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, rel=0.05)


def test_without_spectral_norm_nothing_is_parametrized():
    _, D = build_models(cfg_of("model.family=dcgan", "data.image_size=16"))
    assert not any(parametrize.is_parametrized(m) for m in D.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in D.modules())


def test_mlp_spectral_norm_parametrizes_linears():
    _, D = build_models(cfg_of("data.source=grid", "model.family=mlp", "model.d_norm=spectral"))
    hidden = [m for m in D.modules() if isinstance(m, nn.Linear)][:-1]
    assert hidden and all(parametrize.is_parametrized(m, "weight") for m in hidden)


def test_sample_z_is_reproducible_with_a_seeded_generator():
    G, _ = build_models(cfg_of("model.family=dcgan", "data.image_size=8", "model.z_dim=16"))
    a = G.sample_z(5, torch.Generator().manual_seed(123))
    b = G.sample_z(5, torch.Generator().manual_seed(123))
    c = G.sample_z(5, torch.Generator().manual_seed(124))
    assert a.shape == (5, 16)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the draw is independent of the global RNG
    torch.manual_seed(0)
    d = G.sample_z(5, torch.Generator().manual_seed(123))
    torch.manual_seed(1)
    e = G.sample_z(5, torch.Generator().manual_seed(123))
    assert torch.equal(d, e) and torch.equal(a, d)
    # consecutive draws from one generator differ
    gen = torch.Generator().manual_seed(7)
    assert not torch.equal(G.sample_z(5, gen), G.sample_z(5, gen))


def test_truncate_redraws_only_the_entries_beyond_the_threshold():
    z = torch.randn(20_000, 8, generator=torch.Generator().manual_seed(0))
    t = truncate(z, 1.0, torch.Generator().manual_seed(1))
    inside = z.abs() <= 1.0
    assert t.abs().max() <= 1.0
    assert torch.equal(t[inside], z[inside])  # entries already within are kept
    assert not torch.equal(t[~inside], z[~inside].clamp(-1, 1))  # redrawn, not clipped
    # the standard normal truncated to [-1, 1]: mean 0, std 0.5396
    assert abs(t.mean().item()) < 0.01 and t.std().item() == pytest.approx(0.5396, abs=0.005)
    assert torch.equal(t, truncate(z, 1.0, torch.Generator().manual_seed(1)))  # seeded
    with pytest.raises(ValueError, match="truncation must be positive, got 0"):
        truncate(z, 0)


def test_sample_with_truncation_feeds_g_the_truncated_z():
    G, _ = build_models(cfg_of("model.family=dcgan", "data.image_size=8", "model.z_dim=16"))
    seen = []
    G.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0]))
    full = sample(G, 300, seed=0)
    cut = sample(G, 300, seed=0, truncation=0.5)
    assert seen[0].abs().max() > 2 and seen[1].abs().max() <= 0.5
    assert not np.allclose(full, cut)
    assert np.array_equal(cut, sample(G, 300, seed=0, truncation=0.5))


def test_dcgan_init_scale():
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=64, channels=1, size=32, width=32, norm="batch")
    w = G.fc.weight.detach()
    assert w.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.equal(G.fc.bias.detach(), torch.zeros_like(G.fc.bias))


def test_dcgan_init_reaches_spectral_norm_weights():
    cfg = load_config(None, ["model.d_norm=spectral", "data.image_size=32"])
    _, D = build_models(cfg)
    originals = [m.parametrizations.weight.original for m in D.modules()
                 if hasattr(m, "parametrizations")]
    assert len(originals) == 4
    for w in originals:
        assert abs(float(w.detach().std()) - 0.02) < 0.004
