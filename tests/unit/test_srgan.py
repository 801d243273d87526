"""SRGAN: pixel-shuffle shapes, the discriminator on any crop size, config errors naming the key,
the SR update (pretrain phase, switch, exact resume), tiled upscaling, VGG weights, and a round
trip on a real photograph."""
import pytest
import torch

from gan_core.config import ConfigError, load_config
from gan_core.metrics import evaluate
from gan_core.models import build_models
from gan_core.models.srgan import SRDiscriminator, SRGenerator, upsample_block
from gan_core.sr import bicubic_upsample, downsample, sr_metrics, upscale_tiled
from gan_core.sr_training import SRTraining, content_loss
from gan_core.training import make_optimizers

SR = ["model.family=srgan", "data.source=sklearn_photos", "data.random_crops=true",
      "data.channels=3", "data.image_size=16", "model.sr_scale=2", "model.sr_blocks=2",
      "model.g_width=8", "model.d_width=4", "train.batch_size=4"]


@pytest.mark.parametrize("scale", [2, 4])
def test_generator_upsamples_any_size_by_its_scale_with_log2_pixel_shuffles(scale):
    G = SRGenerator(3, scale, 8, 2, "none")
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in G.modules()) == {2: 1, 4: 2}[scale]
    out = G(torch.randn(2, 3, 7, 5))
    assert out.shape == (2, 3, 7 * scale, 5 * scale)
    gray = SRGenerator(1, scale, 8, 1, "batch").eval()
    assert gray(torch.randn(1, 1, 6, 9)).shape == (1, 1, 6 * scale, 9 * scale)


def test_pixel_shuffle_puts_each_channel_group_on_its_subpixel():
    block = upsample_block(1)
    conv = block[0]
    with torch.no_grad():  # identity-like conv: output channel k = k-th constant plane
        conv.weight.zero_()
        conv.bias.copy_(torch.arange(4.0))
    out = block[1](conv(torch.zeros(1, 1, 3, 3)))  # PixelShuffle, before PReLU
    assert out.shape == (1, 1, 6, 6)
    # channel i*2 + j lands at (2y + i, 2x + j)
    assert torch.equal(out[0, 0, :2, :2], torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    assert torch.equal(out[0, 0, 4:, 2:4], torch.tensor([[0.0, 1.0], [2.0, 3.0]]))


def test_generator_starts_at_bicubic_and_discriminator_takes_any_crop():
    G = SRGenerator(3, 4, 8, 2, "none")
    lr = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.allclose(G(lr), torch.nn.functional.interpolate(
        lr, scale_factor=4, mode="bicubic", align_corners=False))
    D = SRDiscriminator(3, 4, "batch")
    assert D(torch.randn(3, 3, 16, 16)).shape == (3,)
    assert D(torch.randn(3, 3, 48, 32)).shape == (3,)


@pytest.mark.parametrize("override, key", [
    (["model.sr_scale=3"], "model.sr_scale"),
    (["data.image_size=18", "model.sr_scale=4"], "data.image_size"),
    (["data.random_crops=false"], "data.random_crops"),
    (["loss.content=vgg"], "loss.vgg_weights"),
    (["loss.content=perceptual"], "loss.content"),
    (["eval.metrics=fid", "eval.evaluator=models:/e@champion"], "eval.metrics"),
    (["model.num_classes=10"], "model.num_classes"),
    (["model.text_max_len=12"], "model.text_max_len"),
    (["mlflow.metric=fid"], "mlflow.metric"),
    (["loss.adv_weight=-1"], "loss.adv_weight"),
    (["data.holdout_crops=0"], "data.holdout_crops"),
])
def test_bad_sr_config_names_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, [*SR, *override])
    assert e.value.key == key


def test_psnr_is_a_champion_metric():
    cfg = load_config(None, [*SR, "mlflow.metric=psnr", "mlflow.mode=max"])
    assert cfg.mlflow.metric == "psnr"


def _training(pretrain_images, seed=0):
    cfg = load_config(None, SR)
    torch.manual_seed(seed)
    G, D = build_models(cfg)
    opt_g, opt_d = make_optimizers(G, D, cfg.train)
    return SRTraining(G, D, opt_g, opt_d, cfg.loss, 2, content_loss(cfg.loss), pretrain_images,
                      global_batch=4)


def _batches(n):
    gen = torch.Generator().manual_seed(5)
    return [torch.rand(4, 3, 16, 16, generator=gen) * 2 - 1 for _ in range(n)]


def _params(m):
    return [p.detach().clone() for p in m.parameters()]


def test_pretrain_phase_trains_g_alone_then_the_adversarial_phase_trains_both():
    tr = _training(pretrain_images=8)
    b = _batches(3)
    d0, g0 = _params(tr.D), _params(tr.G)
    out = tr.step(b[0])
    assert set(out) == {"content"} and tr.pretraining
    assert all(torch.equal(x, y) for x, y in zip(_params(tr.D), d0))
    assert any(not torch.equal(x, y) for x, y in zip(_params(tr.G), g0))
    tr.step(b[1])
    assert not tr.pretraining and tr.images_seen == 8
    out = tr.step(b[2])
    assert {"d_loss", "g_loss", "content", "g_adv"} <= set(out)
    assert any(not torch.equal(x, y) for x, y in zip(_params(tr.D), d0))
    # G's loss is the content loss plus 1e-3 x the adversarial one
    assert torch.isclose(out["g_loss"], out["content"] + 1e-3 * out["g_adv"])


def test_resume_across_the_phase_switch_is_exact():
    b = _batches(6)
    straight = _training(pretrain_images=12)
    for x in b:
        straight.step(x)
    first = _training(pretrain_images=12)
    for x in b[:2]:
        first.step(x)
    state = first.state_dict()
    resumed = _training(pretrain_images=12, seed=1)  # other initial weights: all must come back
    resumed.load_state_dict(state)
    for x in b[2:]:
        resumed.step(x)
    assert resumed.images_seen == straight.images_seen == 24
    for a, c in zip([*_params(straight.G), *_params(straight.D)],
                    [*_params(resumed.G), *_params(resumed.D)]):
        assert torch.equal(a, c)


def test_tiled_upscaling_matches_the_whole_image():
    torch.manual_seed(0)
    G = SRGenerator(1, 2, 4, 1, "none").eval()
    with torch.no_grad():
        G.tail.weight.normal_(0, 0.1)  # a non-trivial G
    lr = torch.rand(1, 1, 37, 29) * 2 - 1
    with torch.no_grad():
        whole = G(lr)
    tiled = upscale_tiled(G, lr, tile=32, overlap=12)  # G sees 10 input pixels on each side
    assert tiled.shape == (1, 1, 74, 58)
    assert torch.allclose(tiled, whole, atol=1e-5)
    seamy = upscale_tiled(G, lr, tile=10, overlap=1)  # too little context: seams differ
    assert not torch.allclose(seamy, whole, atol=1e-4)
    with pytest.raises(ValueError, match="twice the overlap"):
        upscale_tiled(G, lr, tile=16, overlap=8)


def test_round_trip_on_a_real_photograph():
    """china.jpg -> bicubic x2 downsampling -> G (whole and in tiles) -> the original size, as
    close to the photo as bicubic upsampling at the start; one training step moves G off it."""
    from sklearn.datasets import load_sample_images

    photo = torch.from_numpy(load_sample_images().images[0].transpose(2, 0, 1).copy()).float()
    hr = photo[None, :, 200:296, 300:428] / 127.5 - 1
    lr = downsample(hr, 2)
    assert lr.shape == (1, 3, 48, 64)
    tr = _training(pretrain_images=10**9, seed=0)
    G = tr.G.eval()
    with torch.no_grad():
        whole = G(lr)
    assert whole.shape == hr.shape
    assert torch.allclose(upscale_tiled(G, lr, tile=40, overlap=12), whole, atol=1e-5)
    psnr = evaluate("psnr", whole.clamp(-1, 1), target=hr)["psnr"]
    bicubic = evaluate("psnr", bicubic_upsample(lr, 2), target=hr)["psnr"]
    assert 20 < psnr == pytest.approx(bicubic, abs=0.05)  # G starts at bicubic
    figures = sr_metrics(G, hr)
    assert figures["psnr"] == pytest.approx(psnr) and figures["psnr_bicubic"] == pytest.approx(bicubic)
    assert 0.5 < figures["ssim"] <= 1
    tr.G.train()
    tr.step(hr[:, :, :32, :32].expand(4, -1, -1, -1))
    assert not torch.allclose(G.eval()(lr), whole)


def test_vgg_content_loss_loads_plain_weights_and_refuses_others(tmp_path):
    from gan_core.models.vgg import VGGFeatures, load_vgg_weights

    net = VGGFeatures()
    torch.save({f"features.{k}": v for k, v in net.features.state_dict().items()},
               tmp_path / "vgg19.pt")
    weights = load_vgg_weights(str(tmp_path / "vgg19.pt"))
    loss = content_loss(load_config(None, SR).loss.__class__(content="vgg"),
                        VGGFeatures.from_state(weights))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0.0
    assert loss(x, x.flip(3)).item() > 0.0
    G, _ = build_models(load_config(None, SR))
    torch.save(G.state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt is not a VGG19"):
        load_vgg_weights(str(tmp_path / "other.pt"))
