"""The speed switches of `train`: per-device resolution, bad values, and the numerics of a few
GANTraining steps with and without each switch (built by gan_core.build, as the worker builds them), on the
CPU and, where torch sees one, on a GPU."""
import pytest
import torch

from gan_core.build import build_training
from gan_core.checkpoint import load_state, save_state
from gan_core.config import ConfigError, TrainConfig, load_config
from gan_core.ema import ema_update
from gan_core.models import build_models
from gan_core.speedups import as_input, resolve
from gan_core.text import encode

BATCH, STEPS = 8, 5
DCGAN = ["model.family=dcgan", "data.image_size=16", "data.channels=1", "model.z_dim=8",
         "model.g_width=8", "model.d_width=8", f"train.batch_size={BATCH}"]
MLP = ["model.family=mlp", "data.source=ring", "model.z_dim=4", "model.g_width=16",
       "model.d_width=16", f"train.batch_size={BATCH}"]
# a conv bias followed by BatchNorm has a zero gradient in exact arithmetic; Adam scales its
# rounding noise up to full lr-sized steps, so parameters are compared without BatchNorm
NO_NORM = ["model.g_norm=none", "model.d_norm=none"]
TEXT = [*DCGAN, "model.text_max_len=12", "data.captions_per_image=1", "model.text_dim=8",
        "model.cond_dim=4", "loss.mismatch_weight=0.5", "loss.interp_weight=1.0"]
CAPTIONS = ["a red bird", "two dogs", "a small cat", "nine fish"] * (BATCH // 4)
FAMILIES = {"dcgan": [*DCGAN, *NO_NORM], "dcgan-batchnorm": DCGAN, "mlp": [*MLP, *NO_NORM],
            "text": [*TEXT, *NO_NORM]}
# every switch off, whatever "auto" picks on the device: the switch under test overrides its "off"
OFF = ["train.precision=fp32", "train.channels_last=false", "train.fused_adam=false"]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no GPU: the CUDA kernels are checked on a GPU machine"))]
# losses and parameters agree to fp32 rounding; cuDNN picks other algorithms per memory format
TOL = {"cpu": (1e-5, 1e-6), "cuda": (1e-4, 1e-5)}


@pytest.fixture(autouse=True)
def no_tf32():
    """fp32 comparisons in fp32: TF32 convolutions (cuDNN's default) keep 10 mantissa bits and
    would hide what a switch does behind the rounding of whichever algorithm cuDNN picked."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def build(overrides, switches=(), device="cpu"):
    cfg = load_config(None, [*overrides, *OFF, *switches, "train.ema_half_life_images=100"])
    tr, fast = build_training(cfg, device)
    return cfg, fast, tr


def train(overrides, switches=(), steps=STEPS, tr_fast=None, device="cpu"):
    """Losses (steps, 2) and every parameter (G, D, G_ema) after `steps` seeded steps (returned on the CPU)."""
    cfg, fast, tr = tr_fast or build(overrides, switches, device)
    device = next(tr.G.parameters()).device
    data, z = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    shape = (2,) if cfg.model.family == "mlp" else (1, 16, 16)
    y = torch.as_tensor(encode(CAPTIONS, 12)).to(device) if cfg.model.text_max_len else None
    losses = []
    for _ in range(steps):
        real = (torch.rand(BATCH, *shape, generator=data) * 2 - 1).to(device)
        out = tr.step(as_input(real, fast), z, y)
        losses.append(torch.stack([out["d_loss"], out["g_loss"]]))
    flat = torch.cat([p.detach().flatten() for m in (tr.G, tr.D, tr.G_ema) for p in m.parameters()])
    return (torch.stack(losses).cpu() if losses else None), flat.cpu(), tr


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("switch", ["train.channels_last=true", "train.fused_adam=true"])
def test_exact_switches_keep_losses_and_parameters(family, switch, device):
    base_losses, base_params, _ = train(FAMILIES[family], device=device)
    losses, params, tr = train(FAMILIES[family], [switch], device=device)
    loss_tol, param_tol = TOL[device]
    assert torch.allclose(losses, base_losses, rtol=0, atol=loss_tol), (losses, base_losses)
    if family != "dcgan-batchnorm":
        assert torch.allclose(params, base_params, rtol=0, atol=param_tol), \
            (params - base_params).abs().max()
    assert not torch.equal(params, train(FAMILIES[family], steps=0, device=device)[1])  # moved
    if switch == "train.fused_adam=true":
        assert all(g["fused"] for opt in (tr.opt_g, tr.opt_d) for g in opt.param_groups)
    elif family != "mlp":
        conv = next(p for p in tr.D.parameters() if p.dim() == 4 and p.shape[1] > 1)
        assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_bf16_autocast_gives_close_fp32_losses(family, device):
    """bf16 keeps 8 bits of mantissa (relative step 2**-8 ~ 0.4%): the nets' outputs round at
    every layer, so losses of ~1.4 agree to a few bf16 steps (0.02), not to fp32's 1e-5."""
    base_losses, _, _ = train(FAMILIES[family], device=device)
    losses, params, tr = train(FAMILIES[family], ["train.precision=bf16"], device=device)
    assert torch.isfinite(params).all()
    assert losses.dtype == torch.float32  # the losses themselves are computed in fp32
    assert torch.allclose(losses, base_losses, rtol=0, atol=2e-2), (losses, base_losses)
    assert not torch.equal(losses, base_losses)  # autocast really ran
    assert all(p.dtype == torch.float32 for p in tr.G.parameters())  # fp32 master weights


def test_bf16_runs_the_nets_in_bf16_and_returns_fp32_logits():
    _, _, tr = build(DCGAN, ["train.precision=bf16"])
    seen = []
    first_linear = next(m for m in tr.D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    first_linear.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    logits = tr._judge(torch.rand(BATCH, 1, 16, 16), None)
    assert seen == [torch.bfloat16] and logits.dtype == torch.float32


def test_resolution_per_device():
    cpu = resolve(TrainConfig(), "cpu")
    assert cpu.autocast is None and not (cpu.channels_last or cpu.fused_adam or cpu.bucket_view
                                         or cpu.compile or cpu.pin_memory)
    gpu = resolve(TrainConfig(), "cuda", cuda_bf16=True)
    assert gpu.autocast == torch.bfloat16
    assert gpu.channels_last and gpu.fused_adam and gpu.bucket_view and gpu.pin_memory
    assert not gpu.compile  # minutes of compiling: only when asked
    assert resolve(TrainConfig(), "cuda", cuda_bf16=False).autocast is None  # pre-Ampere GPU
    asked = TrainConfig(precision="bf16", channels_last=True, fused_adam=True,
                        grad_bucket_view=True, compile=True)
    on_cpu = resolve(asked, "cpu")
    assert on_cpu.autocast == torch.bfloat16 and on_cpu.channels_last and on_cpu.fused_adam
    assert on_cpu.bucket_view and on_cpu.compile and not on_cpu.pin_memory
    off = TrainConfig(precision="fp32", channels_last=False, fused_adam=False, grad_bucket_view=False)
    on_gpu = resolve(off, "cuda", cuda_bf16=True)
    assert on_gpu.autocast is None and not (on_gpu.channels_last or on_gpu.fused_adam or on_gpu.bucket_view)


def test_switch_values_from_yaml_and_overrides():
    cfg = load_config(None, ["train.channels_last=true", "train.fused_adam=false",
                             "train.grad_bucket_view=auto", "train.precision=bf16",
                             "train.prefetch_batches=0"])
    t = cfg.train
    assert (t.channels_last, t.fused_adam, t.grad_bucket_view) == (True, False, "auto")
    assert t.precision == "bf16" and t.prefetch_batches == 0
    assert cfg.flat()["train.channels_last"] is True


@pytest.mark.parametrize("override, key", [
    ("train.precision=fp16", "train.precision"),
    ("train.channels_last=fast", "train.channels_last"),
    ("train.fused_adam=1", "train.fused_adam"),  # an integer is not a switch
    ("train.grad_bucket_view=null", "train.grad_bucket_view"),
    ("train.compile=auto", "train.compile"),
    ("train.prefetch_batches=-1", "train.prefetch_batches"),
    ("train.fetch_batches=-2", "train.fetch_batches"),
])
def test_bad_switch_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert e.value.key == key
    if key in ("train.channels_last", "train.fused_adam", "train.grad_bucket_view"):
        assert "auto, true, false" in str(e.value)


def test_compile_refuses_progan():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["model.family=progan", "data.image_size=8", "model.mbstd_group=4",
                           "train.batch_size=8", "train.compile=true"])
    assert e.value.key == "train.compile"


def test_resume_takes_this_runs_adam_kernel_and_continues_exactly(tmp_path):
    """A checkpoint of a plain-Adam run resumed with fused Adam: the kernel is this run's, the
    moments and step counts the checkpoint's, and the next steps match an unbroken run."""
    overrides = [*DCGAN, *NO_NORM]
    _, _, plain = train(overrides, steps=3)
    save_state(tmp_path, {"training": plain.state_dict()})
    _, whole, _ = train(overrides, steps=2, tr_fast=build(overrides)[:2] + (plain,))
    cfg, fast, resumed = build(overrides, ["train.fused_adam=true"])
    resumed.load_state_dict(load_state(tmp_path)["training"])
    assert all(g["fused"] for opt in (resumed.opt_g, resumed.opt_d) for g in opt.param_groups)
    _, params, _ = train(overrides, steps=2, tr_fast=(cfg, fast, resumed))
    assert torch.allclose(params, whole, rtol=0, atol=1e-6)


def test_ema_update_matches_a_per_parameter_lerp():
    cfg = load_config(None, DCGAN)
    torch.manual_seed(0)
    G, _ = build_models(cfg)
    torch.manual_seed(1)
    ema, _ = build_models(cfg)
    G(torch.randn(BATCH, cfg.model.z_dim))  # BatchNorm running stats: buffers to copy
    expected = [pe.detach().lerp(p.detach(), 0.1) for pe, p in zip(ema.parameters(), G.parameters())]
    ema_update(ema, G, 0.9)
    assert all(torch.equal(a, b) for a, b in zip(ema.parameters(), expected))
    assert all(torch.equal(a, b) for a, b in zip(ema.buffers(), G.buffers()))


@pytest.mark.parametrize("device", DEVICES)
def test_compile_keeps_losses_parameters_and_checkpoint_keys(device):
    """torch.compile of G and D (the MLP, the quickest to compile): same losses and parameters
    as eager (fused kernels may round differently), through D's requires_grad switching between
    phases, and the same state-dict keys, so checkpoints stay loadable without compiling."""
    base_losses, base_params, eager = train(FAMILIES["mlp"], steps=3, device=device)
    losses, params, tr = train(FAMILIES["mlp"], ["train.compile=true"], steps=3, device=device)
    assert tr.G._compiled_call_impl is not None and tr.D._compiled_call_impl is not None
    assert torch.allclose(losses, base_losses, rtol=0, atol=1e-5), (losses, base_losses)
    assert torch.allclose(params, base_params, rtol=0, atol=1e-5)
    assert tr.state_dict()["G"].keys() == eager.state_dict()["G"].keys()
    assert tr.state_dict()["D"].keys() == eager.state_dict()["D"].keys()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU: host syncs exist only on one")
@pytest.mark.parametrize("family", ["dcgan-batchnorm", "text"])
def test_a_cuda_step_never_waits_for_the_gpu(family):
    """With the GPU defaults (bf16, channels_last, fused Adam, EMA), a step queues its kernels and
    returns: no .item(), no pageable copy, no data-dependent shape makes the host wait. CUDA's
    sync debug mode turns any such wait into an error."""
    cfg, fast, tr = build(FAMILIES[family], ["train.precision=bf16", "train.channels_last=true",
                                             "train.fused_adam=true"], "cuda")
    train(FAMILIES[family], steps=2, tr_fast=(cfg, fast, tr))  # lazy state (Adam moments) first
    real = as_input(torch.rand(BATCH, 1, 16, 16, device="cuda") * 2 - 1, fast)
    y = torch.as_tensor(encode(CAPTIONS, 12)).cuda() if cfg.model.text_max_len else None
    z = torch.Generator().manual_seed(3)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            out = tr.step(real, z, y)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(out["d_loss"]).item() and out["d_loss"].device.type == "cuda"
