"""Where a Ray Train worker's step time goes: the worker loop of pipelines/worker.py (same models,
DDP wrapping, data shard and iter_torch_batches arguments) with timers around its parts, run with
1 worker and with 2 workers x 1 thread.

    .venv/bin/python bench/step_profile.py [--configs dcgan_mnist,grid_mlp] [--epochs-scale 1.0]
        [--mnist ../shared/data/mnist] [--set key=value ...]

After a warm-up epoch that only reads data, each run trains the config's epochs "as trained"
(DDP all-reduces D's and G's gradients, no buffer broadcast, as the pipeline does); with 2
workers twice more: "G buf sync" (G's BatchNorm buffers broadcast before every G forward, DDP's
default, which the pipeline used before) and "no comm" (also inside `no_sync`: every collective
removed, ranks drift apart, timing only); with 1
worker once more on one epoch of batches held in a list ("cached": no Ray Data, the worker
process's compute alone, to set beside bench/throughput.py's plain loop). Rows are milliseconds per step, averaged over steps and ranks: waiting for the
next batch, the D phase (G forward for the fakes, D forwards and backward with the all-reduce
of D's gradients, Adam), lazy R1, the G phase (G and D forwards, backward with G's all-reduce,
Adam, EMA), and the host sync of the logging steps. `cpu %` is the worker's process CPU time over
wall time: below 100 means it waited (for the other rank, the network, or a core). `all-reduce`
is one bare dist.all_reduce of D's plus G's parameter count, timed apart. Timers are exact on CPU
(synchronous); on CUDA each is preceded by a device sync."""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.distributed as dist

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from gan_core.config import from_dict, load_config  # noqa: E402
from gan_core.models import build_models, sample_shape  # noqa: E402
from gan_core.training import GANTraining, make_optimizers, no_sync  # noqa: E402
from pipelines.worker import epoch_batches  # noqa: E402
from throughput import MNIST, preset  # noqa: E402

PARTS = ("epoch start", "data wait", "D phase", "D_reg phase", "G phase", "log sync")
MODES = ("as trained", "G buf sync", "no comm")  # with 2 workers; 1 worker: "cached" too


class TimedTraining(GANTraining):
    """GANTraining with wall-clock seconds per phase."""

    def __init__(self, *args, device=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    def timed(self, name: str, fn, *args):
        sync(self.device)
        t0 = time.perf_counter()
        out = fn(*args)
        sync(self.device)
        self.seconds[name] += time.perf_counter() - t0
        return out

    def _phase_d(self, *args):
        return self.timed("D phase", super()._phase_d, *args)

    def _phase_d_reg(self, *args):
        return self.timed("D_reg phase", super()._phase_d_reg, *args)

    def _phase_g(self, *args):
        return self.timed("G phase", super()._phase_g, *args)


def sync(device) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_loop(config: dict) -> None:
    import ray.train
    import ray.train.torch

    cfg = from_dict(config["cfg"], check_paths=False)
    world = ray.train.get_context().get_world_size()
    torch.set_num_threads(cfg.train.threads_per_worker)
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed)
    G, D = build_models(cfg)
    ddp = {"forward_sync_buffers": False}  # as pipelines/worker.py wraps them
    G = ray.train.torch.prepare_model(G, parallel_strategy_kwargs=ddp)
    D = ray.train.torch.prepare_model(D, parallel_strategy_kwargs=ddp)
    t = cfg.train
    tr = TimedTraining(G, D, *make_optimizers(G, D, t), cfg.loss, t.n_critic,
                       t.ema_half_life_images, t.batch_size * world, device=device)
    shard = ray.train.get_dataset_shard("train")
    result = {"allreduce_ms": _allreduce_ms(G, D, device) if world > 1 else 0.0}
    result["data only"] = _data_only(shard, cfg, cfg.seed) * world  # also the warm-up
    # 1 worker: prepare_model wraps nothing, so there is no communication to remove; instead the
    # same steps on one epoch of batches held in a list: the worker's compute without Ray Data
    cached = [b for b in _batches(shard, cfg, cfg.seed)] if world == 1 else None
    for mode in ("as trained", "cached") if world == 1 else MODES:
        tr.seconds.clear()
        if hasattr(G, "forward_sync_buffers"):
            G.forward_sync_buffers = mode == "G buf sync"
        steps, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
        for epoch in range(t.epochs):
            gen = torch.Generator().manual_seed(epoch)
            batches = iter(cached if mode == "cached" else _batches(shard, cfg, cfg.seed + epoch))
            steps_in_epoch = 0
            while True:
                t0 = time.perf_counter()
                batch = next(batches, None)
                tr.seconds["epoch start" if steps_in_epoch == 0 else "data wait"] += time.perf_counter() - t0
                steps_in_epoch += 1
                if batch is None:
                    break
                with contextlib.ExitStack() as stack:
                    if mode == "no comm":
                        stack.enter_context(no_sync(G))
                        stack.enter_context(no_sync(D))
                    out = tr.step(batch["x"], gen, batch.get("y"))
                steps += 1
                if tr.step_index % t.log_every_steps == 0:
                    tr.timed("log sync", lambda: [v.item() for v in out.values()])
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        result[mode] = {**{k: 1000 * v / steps for k, v in tr.seconds.items()},
                        "step": 1000 * wall / steps, "cpu %": 100 * cpu / wall,
                        "images/s": steps * t.batch_size * world / wall}
    ranks = [result]
    if world > 1:
        ranks = [None] * world
        dist.all_gather_object(ranks, result)
    with tempfile.TemporaryDirectory() as tmp:  # Ray Train keeps metrics only with a checkpoint
        Path(tmp, "ranks.json").write_text(json.dumps(ranks))
        ray.train.report({}, checkpoint=ray.train.Checkpoint.from_directory(tmp)
                         if ray.train.get_context().get_world_rank() == 0 else None)


def _batches(shard, cfg, seed: int):
    """The shard's batches as pipelines/worker.py asks for them."""
    return epoch_batches(shard, cfg.train, False, seed, math.prod(sample_shape(cfg)))


def _data_only(shard, cfg, seed: int) -> float:
    """images/s one epoch of the shard delivers to a worker that does nothing else."""
    t0, n = time.perf_counter(), 0
    for batch in _batches(shard, cfg, seed):
        n += len(batch["x"])
    return n / (time.perf_counter() - t0)


def _allreduce_ms(G, D, device, reps: int = 20) -> float:
    """One all-reduce of as many floats as G and D have parameters, in milliseconds."""
    n = sum(p.numel() for m in (G, D) for p in m.parameters())
    buf = torch.zeros(n, device=device)
    dist.all_reduce(buf)  # warm-up
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(reps):
        dist.all_reduce(buf)
    sync(device)
    return 1000 * (time.perf_counter() - t0) / reps


def run(cfg, workers: int) -> list[dict]:
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    from gan_core.data import load_source
    from pipelines.datasets import to_ray_dataset
    from pipelines.run import worker_runtime_env

    cfg.ray.num_workers = workers
    dataset = to_ray_dataset(load_source(cfg.data, seed=cfg.seed), cfg)
    with tempfile.TemporaryDirectory() as tmp:
        result = TorchTrainer(
            profile_loop, train_loop_config={"cfg": cfg.to_dict()},
            scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=cfg.ray.use_gpu,
                                                   resources_per_worker={"CPU": cfg.ray.cpus_per_worker}),
            # the pipeline's malloc settings: without them the worker pays page faults it does not
            run_config=ray.train.RunConfig(name=f"profile-{workers}", storage_path=tmp,
                                           worker_runtime_env=worker_runtime_env(cfg)),
            datasets={"train": dataset}).fit()
        with result.checkpoint.as_directory() as d:
            return json.loads(Path(d, "ranks.json").read_text())


def print_profile(name: str, cfg, by_workers: dict[int, list[dict]]) -> None:
    print(f"\nconfig {name}: {cfg.model.family}, {cfg.data.source}, batch {cfg.train.batch_size}/worker, "
          f"{cfg.train.threads_per_worker} thread/worker, {cfg.train.epochs} epochs; ms per step, "
          f"mean over ranks")
    cols = [(w, mode) for w in sorted(by_workers) for mode in (*MODES, "cached")
            if mode in by_workers[w][0]]
    heads = [f"{w}w {mode}" for w, mode in cols]
    print(f"{'':14}" + "".join(f"{h:>16}" for h in heads))
    for part in (*PARTS, "step", "cpu %", "images/s"):
        cells = [sum(r[mode].get(part, 0.0) for r in by_workers[w]) / len(by_workers[w])
                 for w, mode in cols]
        if part == "images/s":  # every rank measured the global rate: the slowest sets it
            cells = [min(r[mode][part] for r in by_workers[w]) for w, mode in cols]
        print(f"{part:14}" + "".join(f"{c:16.2f}" for c in cells))
    for w in sorted(by_workers):
        if w > 1:
            ms = sum(r["allreduce_ms"] for r in by_workers[w]) / w
            print(f"bare all-reduce of G+D's parameters, {w} workers: {ms:.2f} ms")
        rate = min(r["data only"] for r in by_workers[w])
        print(f"data only, {w} worker(s), first epoch (stream start included; the warm-up): "
              f"{rate:.0f} images/s in all")


def main() -> None:
    import ray

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="dcgan_mnist,grid_mlp")
    p.add_argument("--epochs-scale", type=float, default=1.0, help="multiply the presets' epochs")
    p.add_argument("--mnist", default=str(MNIST))
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    ray.init(runtime_env={"env_vars": {"PYTHONPATH": f"{REPO}:{REPO / 'bench'}"}})
    for name in (c.strip() for c in args.configs.split(",") if c.strip()):
        epochs, _, sets = preset(name, args.mnist, args.overrides)
        sets.append(f"train.epochs={max(1, round(epochs * args.epochs_scale))}")
        cfg = load_config(str(REPO / "tune_configs" / f"{name}.yaml"), sets)
        print_profile(name, cfg, {w: run(cfg, w) for w in (1, 2)})


if __name__ == "__main__":
    main()
