"""The Ray Train worker loop: G and D wrapped as separate DDP modules, alternating updates,
a checkpoint through `ray.train.report`, metrics and samples to MLflow from rank 0 only."""
from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path

import ray.train
import ray.train.torch
import numpy as np
import torch
import torch.distributed as dist

from gan_core.build import build_training
from gan_core.checkpoint import load_state, save_state
from gan_core.config import TOY_SOURCES, from_dict
from gan_core.evaluation import (class_rows, mismatch_accuracy, mismatched, quality_metrics, sample,
                                 sample_labels, save_figure)
from gan_core.models import sample_shape
from gan_core.models.evaluator import DigitClassifier
from gan_core.progressive import ProgressiveGANTraining, at_resolution
from gan_core.sr import save_sr_figure, sr_metrics
from gan_core.speedups import as_input, ddp_kwargs
from gan_core.text import encode, pick_captions
from gan_core.thread_time import Window
from gan_core.training import GANTraining, apply_optimizer_config, lr_scale, unwrap
from pipelines.run_marker import write_divergence
from pipelines.run_log import RankZeroLog


FLUSH_TIMEOUT_S = 120.0  # at the end, how long rank 0 waits for an unreachable MLflow server


def _any_rank(flag: bool, device) -> bool:
    """True when `flag` is true on any rank; every rank must call this at the same point."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)  # NCCL needs a device tensor
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _finite_params(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


FETCH_BYTES = 4 << 20  # rows Ray Data hands over at once (train.fetch_batches: 0), at most
FETCH_MAX_BATCHES = 16  # ... and in at most this many step batches


def fetch_batches(t, row_numel: int) -> int:
    """Step batches per Ray Data batch: `t.fetch_batches`, or for 0 as many as fit FETCH_BYTES of
    float32 rows (16 for the MLP's 2-D points and for 28x28 digits at batch 64, 2 for SRGAN's
    96x96 crops). Ray Data's fixed cost per batch (collation, tensor conversion, the shuffle
    buffer: about 1 ms) is 7% of a 15 ms MLP step when paid every step."""
    if t.fetch_batches:
        return t.fetch_batches
    return max(1, min(FETCH_MAX_BATCHES, FETCH_BYTES // (4 * row_numel * t.batch_size)))


def epoch_batches(shard, t, pin_memory: bool, shuffle_seed: int, row_numel: int):
    """One epoch's step batches of `t.batch_size` rows, already on the worker's device. Ray
    prepares `t.prefetch_batches` ahead, each `fetch_batches` steps' rows at once, and copies each
    once (from pinned memory without blocking, on a GPU); the steps take views of it. The number
    of steps, shard rows // batch_size, is the same on every rank whatever a fetch holds (DDP
    needs that); which rows a step gets depends on it, as the local shuffle draws per fetch."""
    k = fetch_batches(t, row_numel)
    rows = k * t.batch_size
    for big in shard.iter_torch_batches(batch_size=rows, drop_last=False,
                                        prefetch_batches=t.prefetch_batches, pin_memory=pin_memory,
                                        local_shuffle_buffer_size=max(4 * t.batch_size, 1024, rows),
                                        local_shuffle_seed=shuffle_seed):
        n = len(next(iter(big.values())))
        for i in range(0, n - t.batch_size + 1, t.batch_size):  # a short tail is dropped
            yield {key: v[i:i + t.batch_size] for key, v in big.items()}


def train_loop(config: dict) -> None:
    cfg = from_dict(config["cfg"], check_paths=False)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(cfg.train.threads_per_worker)
    device = ray.train.torch.get_device()

    # No BatchNorm buffer broadcast before each forward: D runs two forwards (real, fake) before
    # one backward; G's running statistics are read only on rank 0 (samples, EMA, checkpoints),
    # and broadcasting them made every rank wait for rank 0 twice a step (7% of a 2-worker
    # DCGAN step, bench/step_profile.py). Parameters stay identical: gradients are all-reduced.
    def ddp(module, fast):
        return ray.train.torch.prepare_model(
            module, parallel_strategy_kwargs={**ddp_kwargs(fast), "forward_sync_buffers": False})

    tr, fast = build_training(cfg, device, world, wrap=ddp, vgg=_vgg(config, device))
    opt_g, opt_d = tr.opt_g, tr.opt_d
    progressive = cfg.model.family == "progan"

    start_epoch = 0
    lineage = [cfg.name]  # the Train runs this state went through (PBT: donor, then this one)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:  # a sweep trial restored by Tune (PBT exploit, --resume)
        checkpoint = config.get("init_checkpoint")
    if checkpoint:
        with checkpoint.as_directory() as d:
            state = load_state(d, map_location=device)
        tr.load_state_dict(state["training"])
        apply_optimizer_config(opt_g, opt_d, cfg.train)
        start_epoch = state["epoch"]
        lineage = state.get("lineage", [])
        if lineage[-1:] != [cfg.name]:  # a plain resume continues the same Train run
            lineage = [*lineage, cfg.name]

    log = RankZeroLog(config["tracking_uri"], config["run_id"]) if rank == 0 else None
    judge = _Judge(cfg, config, device) if rank == 0 else None
    every = cfg.eval.every_images
    next_eval = (tr.images_seen // every + 1) * every if every else None
    shard = ray.train.get_dataset_shard("train")
    t = cfg.train
    row_numel = math.prod(sample_shape(cfg))
    # each worker's shard holds num_rows // world rows, in whole batches (drop_last)
    total_images = t.epochs * (config["num_rows"] // world // t.batch_size) * tr.global_batch
    for epoch in range(start_epoch, t.epochs):
        # z and every other draw (GP mixing weights) depend only on (seed, rank, epoch):
        # resuming at an epoch boundary replays them exactly
        epoch_seed = cfg.seed * 1_000_003 + rank * 10_007 + epoch
        z_gen = torch.Generator().manual_seed(epoch_seed)
        torch.manual_seed(epoch_seed + 1)
        last: dict[str, torch.Tensor] = {}
        window, window_steps = Window(), 0
        for batch in epoch_batches(shard, t, fast.pin_memory, cfg.seed + epoch, row_numel):
            y = batch.get("y")
            if "n_captions" in batch:  # text: one of each image's captions, drawn per step
                y = pick_captions(y, batch["n_captions"], z_gen)
            if t.lr_decay:
                apply_optimizer_config(opt_g, opt_d, t, lr_scale(tr.images_seen, total_images, t.lr_decay))
            last.update(tr.step(as_input(batch["x"], fast), z_gen, y))
            window_steps += 1
            if tr.step_index % t.log_every_steps == 0:
                values = {k: v.item() for k, v in last.items()}  # the only host sync: log steps
                if _any_rank(not all(math.isfinite(v) for v in values.values()), device):
                    return _stop_diverged(config, log, values, tr.step_index)
                spent = window.close()
                values["images_per_s"] = window_steps * tr.global_batch / spent.elapsed
                if spent.cpu_wait is not None:  # where the window's time went besides compute
                    values.update(cpu_wait_share=spent.cpu_wait, blocked_share=spent.blocked,
                                  system_share=spent.system)
                values["images_seen"] = tr.images_seen
                if t.lr_decay:
                    values["lr_g"] = opt_g.param_groups[0]["lr"]
                if progressive:
                    values.update(resolution=tr.stage.resolution, alpha=tr.stage.alpha)
                if log:
                    log.metrics(values, tr.step_index)
                window, window_steps = Window(), 0
            if judge and progressive and tr.completed_resolution:
                judge.log_resolution(tr, log, tr.completed_resolution)
            if every and tr.images_seen >= next_eval:
                next_eval = (tr.images_seen // every + 1) * every
                if judge:  # rank 0 only; the others wait for it at their next all-reduce
                    judge.measure(tr, log)

        values = {k: v.item() for k, v in last.items()}
        # nothing non-finite may reach a checkpoint: the last good one must stay good
        if _any_rank(not (_finite_params(tr.G) and _finite_params(tr.D)
                          and all(math.isfinite(v) for v in values.values())), device):
            return _stop_diverged(config, log, values, tr.step_index)
        done = epoch + 1 == t.epochs
        report = {"epoch": epoch + 1, "step": tr.step_index, "images_seen": tr.images_seen,
                  "lr_g": opt_g.param_groups[0]["lr"], "lr_d": opt_d.param_groups[0]["lr"], **values}
        if judge and progressive and done:  # the final resolution's phase ends with the run
            judge.log_resolution(tr, log, tr.stage.resolution)
        if judge and (done or (epoch + 1) % t.sample_every_epochs == 0):
            judge.log_samples(tr, log, epoch + 1)
            if done or not every:
                judge.measure(tr, log)
        if judge:
            report.update(judge.latest)
        if done and log:  # the driver reads the final metrics to decide the champion
            log.flush(FLUSH_TIMEOUT_S)
        if done or (epoch + 1) % t.checkpoint_every_epochs == 0:
            _report_with_checkpoint(report, tr, epoch + 1, lineage, log)
        else:
            ray.train.report(report)


class _Judge:
    """Rank 0's evaluation: quality metrics of the (EMA) generator and sample figures."""

    def __init__(self, cfg, config: dict, device):
        self.cfg, self.device = cfg, device
        self.real = config.get("real_reference")
        self.net = None
        if config.get("evaluator_state") is not None:
            self.net = DigitClassifier().to(device).eval()
            self.net.load_state_dict(config["evaluator_state"])
        self.latest: dict = {}
        self.measured_at = -1
        self.captions = config.get("eval_captions")  # text-to-image: what G draws for
        if self.captions is not None:
            self.tokens = torch.from_numpy(encode(self.captions, cfg.model.text_max_len))
            self.digits = config.get("eval_digits")
            images = torch.from_numpy(config["eval_caption_images"]).to(device)
            self.mismatch = (images, self.tokens[:len(images)].to(device),
                             mismatched(None if self.digits is None else self.digits[:len(images)],
                                        len(images)))

    def measure(self, tr: GANTraining, log: RankZeroLog) -> None:
        if self.measured_at == tr.images_seen:
            return
        e = self.cfg.eval
        toy = self.cfg.data.source in TOY_SOURCES
        sr = self.cfg.model.family == "srgan"  # PSNR/SSIM on the held-out crops
        if not toy and not e.metrics and not sr:
            return
        if sr:
            self.latest = sr_metrics(tr.generator, self.real, self.device)
            if not all(math.isfinite(v) for v in self.latest.values()):  # logged as NaN: the
                warnings.warn(f"non-finite PSNR/SSIM at step {tr.step_index}")  # run stops next
            self.measured_at = tr.images_seen
            log.metrics({**self.latest, "eval_images_seen": tr.images_seen}, tr.step_index)
            return
        labels = sample_labels(tr.generator, e.num_samples)  # a conditional G's: balanced, or by share
        if self.captions is not None:
            labels = self.digits
        samples = sample(tr.generator, e.num_samples, seed=self.cfg.seed, device=self.device,
                         labels=self.tokens if self.captions is not None else labels)
        if not np.isfinite(samples).all():  # the divergence check stops the run at its next step
            warnings.warn(f"non-finite samples at step {tr.step_index}: evaluation skipped")
            self.latest = {k: math.nan for k in self.latest}  # never report a stale good value
            return
        self.latest = quality_metrics(self.cfg.data.source, samples, e.metrics, self.real, self.net,
                                      labels=labels, captions=self.captions)
        if self.captions is not None:
            self.latest.update(mismatch_accuracy(unwrap(tr.D), *self.mismatch))
        self.measured_at = tr.images_seen
        log.metrics({**self.latest, "eval_images_seen": tr.images_seen}, tr.step_index)

    def log_resolution(self, tr: ProgressiveGANTraining, log: RankZeroLog, resolution: int) -> None:
        """ProGAN, at the end of a resolution's phases: a sample grid, and the eval metrics against
        the real reference brought to that resolution as D sees it (averaged down, then nearest-
        upsampled to full size, like G's output: FID's feature net gets full-size images)."""
        e, seed = self.cfg.eval, self.cfg.seed
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp, f"res_{resolution:04d}.png"))
            save_figure(self.cfg.data.source, sample(tr.generator, 64, seed=seed, device=self.device), path)
            log.artifact(path, "samples")
        if self.real is None or not e.metrics:
            return
        samples = sample(tr.generator, e.num_samples, seed=seed, device=self.device)
        if not np.isfinite(samples).all():
            warnings.warn(f"non-finite samples at resolution {resolution}: its metrics skipped")
            return
        real = at_resolution(torch.tensor(self.real), resolution).numpy()
        values = quality_metrics(self.cfg.data.source, samples, e.metrics, real, self.net)
        log.metrics({f"res{resolution}/{k}": v for k, v in values.items()}, tr.step_index)

    def log_samples(self, tr: GANTraining, log: RankZeroLog, epoch: int) -> None:
        if self.cfg.model.family == "srgan":  # rows of LR | bicubic | SR | HR
            with tempfile.TemporaryDirectory() as tmp:
                path = str(Path(tmp, f"epoch_{epoch:05d}.png"))
                log.artifact(save_sr_figure(tr.generator, self.real[:8], path, self.device), "samples")
            log.metrics({"epoch": epoch}, tr.step_index)
            return
        toy = self.cfg.data.source in TOY_SOURCES  # a scatter of 2,500 points, a grid of 64
        labels, nrow = class_rows(tr.generator, 8)  # conditional: a row per class
        if self.captions is not None:  # text: a row per caption, listed in a .txt beside it
            labels, nrow = self.tokens[:8].repeat_interleave(8, 0), 8
        n = self.cfg.eval.num_samples if toy else 64 if labels is None else len(labels)
        samples = sample(tr.generator, n, seed=self.cfg.seed, device=self.device, labels=labels)
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp, f"epoch_{epoch:05d}.png"))
            save_figure(self.cfg.data.source, samples, path, title=f"epoch {epoch}", nrow=nrow)
            log.artifact(path, "samples")
            if self.captions is not None:
                rows = Path(tmp, f"epoch_{epoch:05d}.txt")
                rows.write_text("".join(f"row {i + 1}: {c}\n" for i, c in enumerate(self.captions[:8])))
                log.artifact(str(rows), "samples")
        log.metrics({"epoch": epoch}, tr.step_index)


def _vgg(config: dict, device):
    """The VGG feature net for content 'vgg', from weights the driver read (None otherwise)."""
    if config.get("vgg_state") is None:
        return None
    from gan_core.models.vgg import VGGFeatures

    return VGGFeatures.from_state(config["vgg_state"]).to(device)


def _report_with_checkpoint(metrics: dict, tr: GANTraining, epoch: int, lineage: list[str],
                            log: RankZeroLog | None) -> None:
    """`log` is rank 0's: rank 0 alone writes, as G and D are identical on every rank."""
    with tempfile.TemporaryDirectory() as tmp:
        if log:
            log.write_now()
            save_state(tmp, {"training": tr.state_dict(), "epoch": epoch, "lineage": lineage})
            log.attach_pending(tmp)
        ckpt = ray.train.Checkpoint.from_directory(tmp) if log else None
        ray.train.report(metrics, checkpoint=ckpt, checkpoint_dir_name=f"epoch_{epoch:05d}")


def _stop_diverged(config: dict, log: RankZeroLog | None, values: dict, step: int) -> None:
    """Every rank stops at the same point; no checkpoint is written, so the last good one stays."""
    reason = f"non-finite loss or weights at step {step}: {values}"
    if log:
        log.metrics({k: v for k, v in values.items() if math.isfinite(v)}, step)
        log.flush(FLUSH_TIMEOUT_S)
        write_divergence(config["storage"], config["cfg"]["name"], reason)
    ray.train.report({"diverged": True, "reason": reason})
