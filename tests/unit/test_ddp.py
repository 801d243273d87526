"""GANTraining under DistributedDataParallel (gloo, 2 CPU processes), wrapped as the Ray worker
wraps it: G and D as separate DDP modules with forward_sync_buffers=False. After a few steps
on different data per rank, every rank must hold the same G and D parameters."""
import datetime
import inspect
import json
import os
import traceback
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from gan_core.build import build_training
from gan_core.config import load_config
from gan_core.speedups import ddp_kwargs
from gan_core.text import encode
from pipelines.ports import free_port

WORLD = 2
BATCH = 4
STEPS = 5
SMALL = ["model.family=dcgan", "data.image_size=8", "data.channels=1", "model.z_dim=8",
         "model.g_width=8", "model.d_width=8", "model.g_norm=batch", "model.d_norm=batch",
         f"train.batch_size={BATCH}"]

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def _flat(modules) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for m in modules for p in m.parameters()])


VARIANTS = {
    "nonsaturating": [],
    "wgan-gp": ["loss.name=wgan", "loss.gp_weight=10", "train.n_critic=2"],
    "r1": ["loss.r1_gamma=1.0", "loss.r1_interval=2"],  # double backward under DDP
    # at 16x16 D has a BatchNorm layer too (two forwards per D step, buffers not synced)
    "r1-16px": ["data.image_size=16", "loss.r1_gamma=1.0", "loss.r1_interval=2"],
    # labels through both DDP modules; the batch leaves some classes' embedding rows unused
    "conditional": ["model.num_classes=10", "model.cond_dim=4", "loss.name=wgan",
                    "loss.gp_weight=10"],
    # GAN-CLS: caption tokens through both DDP modules, three D forwards per D step, two G
    # forwards per G step (GAN-INT), and the encoders' GRUs under R1 and the gradient penalty
    "text": ["model.text_max_len=12", "data.captions_per_image=1", "model.text_dim=8", "model.cond_dim=4",
             "loss.mismatch_weight=0.5", "loss.interp_weight=1.0", "loss.r1_gamma=1.0",
             "loss.r1_interval=2"],
    "text-concat-gp": ["model.text_max_len=12", "data.captions_per_image=1", "model.text_dim=8", "model.cond_dim=4",
                       "model.d_cond=concat", "loss.name=wgan", "loss.gp_weight=10",
                       "loss.mismatch_weight=0.5", "loss.interp_weight=1.0"],
    # InfoGAN's code: Q's head on D's features in the fakes' D forward, and a zero gradient
    # under R1, which reads only the reals' logits
    "info": ["model.info_codes=4", "loss.r1_gamma=1.0", "loss.r1_interval=2"],
    # G takes the downsampled real batch; one SRResNet step (8 images), then adversarial ones
    "srgan": ["model.family=srgan", "data.random_crops=true", "data.image_size=16",
              "model.sr_scale=2", "model.sr_blocks=1", "train.pretrain_images=8"],
}
# DDP's gradient_as_bucket_view: gradients live in the all-reduce buckets (set to None between
# phases, frozen in G's phase); "<variant>+bucket-view" must end bit-identical to <variant>
BUCKET_VIEW = "train.grad_bucket_view=true"
for _name in ("nonsaturating", "r1-16px", "text", "srgan", "info"):
    VARIANTS[f"{_name}+bucket-view"] = [*VARIANTS[_name], BUCKET_VIEW]
# every switch at once, under R1's double backward and BatchNorm
VARIANTS["all-switches"] = ["data.image_size=16", "loss.r1_gamma=1.0", "loss.r1_interval=2",
                            BUCKET_VIEW, "train.channels_last=true", "train.fused_adam=true",
                            "train.precision=bf16"]
CAPTIONS = ["a red bird", "two dogs", "a small cat", "nine fish", "one cow"]


def ddp(module, fast):
    """DDP as pipelines/worker.py wraps a model (through Ray Train)."""
    return DDP(module, forward_sync_buffers=False, **ddp_kwargs(fast))


def _variant(rank: int, overrides: list) -> dict:
    cfg = load_config(None, [*SMALL, *overrides, "train.ema_half_life_images=100"])
    tr, _ = build_training(cfg, "cpu", WORLD, wrap=ddp)  # the same initial weights on every rank
    G, D = tr.G, tr.D
    g_init, d_init = _flat([G.module]), _flat([D.module])
    data_gen = torch.Generator().manual_seed(1000 + rank)  # different real data per rank
    z_gen = torch.Generator().manual_seed(7 + 10_007 * rank)  # different z per rank
    torch.manual_seed(500 + rank)  # gp interpolation weights differ per rank too
    keys = []
    for _ in range(STEPS):
        size = cfg.data.image_size
        real = torch.rand(BATCH, 1, size, size, generator=data_gen) * 2 - 1
        y = None
        if cfg.model.num_classes:
            y = torch.randint(0, 3, (BATCH,), generator=data_gen)
        elif cfg.model.text_max_len:
            picked = torch.randint(0, len(CAPTIONS), (BATCH,), generator=data_gen).tolist()
            y = torch.as_tensor(encode([CAPTIONS[i] for i in picked], cfg.model.text_max_len))
        out = tr.step(real, z_gen, y)
        keys.append(sorted(out))
        if not all(torch.isfinite(v).item() for v in out.values()):
            raise RuntimeError(f"non-finite metrics {out}")

    def across_ranks(t: torch.Tensor) -> tuple[bool, float]:
        gathered = [torch.empty_like(t) for _ in range(WORLD)]
        dist.all_gather(gathered, t)
        diff = max((gathered[0] - g).abs().max().item() for g in gathered[1:])
        return all(torch.equal(gathered[0], g) for g in gathered[1:]), diff

    g_flat, d_flat = _flat([G.module]), _flat([D.module])
    all_same, max_diff = across_ranks(torch.cat([g_flat, d_flat]))
    g_same, _ = across_ranks(g_flat)
    d_same, _ = across_ranks(d_flat)
    ema_same, _ = across_ranks(_flat([tr.G_ema]))
    # the local data differ, so identical parameters come from the gradient all-reduce only
    real_same, _ = across_ranks(real.flatten())
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in D.module.modules())
    return dict(ok=True, keys=keys, d_has_batchnorm=has_bn, params=_flat([G.module, D.module]).tolist(),
                grads_are_bucket_views=_grads_in_buckets(D), identical=all_same, max_abs_diff=max_diff,
                g_identical=g_same, d_identical=d_same, ema_identical=ema_same,
                real_identical=real_same,
                g_changed=not torch.equal(g_init, g_flat), d_changed=not torch.equal(d_init, d_flat))


def _grads_in_buckets(ddp: DDP) -> bool:
    """Whether D's gradients after its last backward share storage with DDP's buckets: with
    bucket views, parameters of one bucket have gradients in one flat storage."""
    grads = [p.grad for p in ddp.module.parameters() if p.grad is not None]
    return len(grads) > 1 and len({g.untyped_storage().data_ptr() for g in grads}) < len(grads)


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    results = {}
    try:
        dist.init_process_group("gloo", rank=rank, world_size=WORLD,
                                timeout=datetime.timedelta(seconds=300))  # a loaded 2-core CI box
        for name, overrides in VARIANTS.items():  # one spawn for all: starting processes is slow
            try:
                results[name] = _variant(rank, overrides)
            except Exception:
                results[name] = {"ok": False, "error": traceback.format_exc()}
            dist.barrier()
        results["_complete"] = True  # every variant ran on every rank
    except Exception:
        results["_setup"] = {"ok": False, "error": traceback.format_exc()}
    finally:
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(results, f)
            f.flush()
            os.fsync(f.fileno())
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    try:
        mp.spawn(_worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    except mp.ProcessExitedException as e:
        # gloo's teardown at process exit now and then aborts ("terminate called without an
        # active exception") after the work is done; a crash before that still fails here
        files = [out / f"rank{r}.json" for r in range(WORLD)]
        if not all(f.exists() and json.loads(f.read_text()).get("_complete") for f in files):
            raise
        warnings.warn(f"a DDP test process crashed after finishing its work: {e}")
    results = [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for r in results:
        assert "_setup" not in r, r["_setup"]["error"]
        assert r.get("_complete"), r
    return results


def test_installed_ddp_has_forward_sync_buffers():
    assert "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ddp_ranks_stay_identical(ddp_results, variant):
    per_rank = [r[variant] for r in ddp_results]
    for rank, r in enumerate(per_rank):
        assert r["ok"], f"rank {rank} failed in variant {variant}:\n{r.get('error')}"
    r0 = per_rank[0]
    assert per_rank[0]["keys"] == per_rank[1]["keys"]
    assert not r0["real_identical"]
    assert r0["g_changed"] and r0["d_changed"], r0
    assert r0["g_identical"], f"G differs across ranks: {r0}"
    assert r0["d_identical"], f"D differs across ranks: {r0}"
    assert r0["identical"] and r0["max_abs_diff"] == 0.0
    assert r0["ema_identical"]
    overrides = VARIANTS[variant]
    if "data.image_size=16" in overrides:
        assert r0["d_has_batchnorm"]
    if "loss.r1_gamma=1.0" in overrides:
        assert ["r1" in k for k in r0["keys"]] == [True, False, True, False, True]
    if "model.family=srgan" in overrides:
        assert ["g_adv" in k for k in r0["keys"]] == [False, True, True, True, True]
    elif "train.n_critic=2" in overrides:
        assert ["g_loss" in k for k in r0["keys"]] == [True, False, True, False, True]
        assert all("gp" in k for k in r0["keys"])
    else:
        assert all("g_loss" in k for k in r0["keys"])
    if "loss.mismatch_weight=0.5" in overrides:
        assert all("d_wrong" in k for k in r0["keys"])
    assert r0["grads_are_bucket_views"] == (BUCKET_VIEW in overrides)


@pytest.mark.parametrize("variant", [v.split("+")[0] for v in VARIANTS if "+bucket-view" in v])
def test_gradient_bucket_views_change_no_number(ddp_results, variant):
    for r in ddp_results:
        assert r[variant]["ok"] and r[f"{variant}+bucket-view"]["ok"]
        assert r[variant]["params"] == r[f"{variant}+bucket-view"]["params"]


def _rank0_metrics_worker(rank: int, port: int, out_dir: str) -> None:
    """Only rank 0 evaluates, as in training; a metric that syncs across ranks would block."""
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    result = {"ok": False}
    try:
        dist.init_process_group("gloo", rank=rank, world_size=WORLD,
                                timeout=datetime.timedelta(seconds=30))
        if rank == 0:
            from gan_core.metrics import evaluate
            from gan_core.models.evaluator import DigitClassifier

            torch.manual_seed(0)
            net = DigitClassifier()
            fake, real = torch.rand(40, 1, 28, 28) * 2 - 1, torch.rand(40, 1, 28, 28) * 2 - 1
            result["fid"] = evaluate("fid", fake, real=real, net=net)["fid"]
            result["kid"] = evaluate("kid", fake, real=real, net=net)["kid"]
            result["is"] = evaluate("is", fake, net=net)["is"]
        dist.barrier()
        result["ok"] = True
    except Exception:
        result["error"] = traceback.format_exc()
    finally:
        with open(os.path.join(out_dir, f"metrics{rank}.json"), "w") as f:
            json.dump(result, f)
        if dist.is_initialized():
            dist.destroy_process_group()


def test_rank0_only_metrics_do_not_wait_for_other_ranks(tmp_path):
    mp.spawn(_rank0_metrics_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (json.loads((tmp_path / f"metrics{r}.json").read_text()) for r in range(WORLD))
    assert r0["ok"] and r1["ok"], r0.get("error") or r1.get("error")
    assert all(np.isfinite(r0[k]) for k in ("fid", "kid", "is"))
