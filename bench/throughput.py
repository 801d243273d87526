"""Step overhead and scaling of the real pipeline: images/s of a plain single-process PyTorch loop,
of the pipeline with 1 Ray worker and with 2 workers, each worker with 1 thread and the config's
per-worker batch.

    .venv/bin/python bench/throughput.py [--configs dcgan_mnist,grid_mlp] [--epochs-scale 1.0]
        [--mnist ../shared/data/mnist] [--set key=value ...] [--repeats 1]

A round runs the plain loop before, between and after the two pipeline runs. A pipeline run's `vs
plain` is its images/s over the mean of the plain loop's on either side: the machine's speed
drifts by 10% between minutes (the `vs plain` of the later plain rows shows by how much), and
bracketing cancels the drift that is linear in time. Per config: `overhead` = 1 / the 1-worker run's
`vs plain` (its step time over the plain step time; target <= 1.05), `scaling` = the 2-worker
run's `vs plain` over the 1-worker run's (target >= 1.8). Pipeline figures are the median
of the images/s windows rank 0 logs to MLflow (10 steps each, first dropped as warm-up); `run
mean` is images over the whole logged span (epoch boundaries, Ray reports, checkpoints and
rank 0's evaluation included). The plain loop shuffles pre-loaded tensors each epoch (what one
would write by hand) and is timed the same way: the median of 10-step windows after the first.
`cpu wait` and `blocked` are the median shares of those windows the training thread (rank 0's in
the pipeline) spent runnable without a CPU (other processes had the cores), and neither running
nor runnable (waiting on a lock such as the GIL, on I/O, on the other rank, or on the
hypervisor), from Linux's schedstat: time the step lost, not time it computed. `system` is the
share it spent on a CPU in the kernel (page faults, system calls): work the plain loop may not do.
The bench re-executes itself under the malloc settings the Ray workers get (pipelines/run.py), so
that the plain loop runs under them too.
`--repeats N` runs N rounds, each back to back, and gives each round's ratios
and their median: on a shared machine the load drifts between minutes. Quote ratios from one
run: the machine is shared and noisy. See bench/step_profile.py for where a worker's step time
goes."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gan_core.build import build_training  # noqa: E402
from gan_core.config import load_config  # noqa: E402
from gan_core.data import load_source  # noqa: E402
from gan_core.data.transforms import preprocess_images, preprocess_points  # noqa: E402
from gan_core.thread_time import Window  # noqa: E402
from pipelines.run import worker_runtime_env  # noqa: E402

MNIST = REPO.parent / "shared" / "data" / "mnist"
LOG_WINDOW = 10  # steps per images/s window, in the plain loop and in the pipeline's log
SHARES = ("cpu_wait_share", "blocked_share", "system_share")  # the worker's gan_core.thread_time figures
# name -> (epochs of the pipeline runs, steps of the plain loop, overrides): runs of 1-2 minutes
PRESETS = {
    "dcgan_mnist": (2, 100, ["data.path={mnist}"]),
    "grid_mlp": (2, 400, ["data.num_samples=40000"]),
    "dcgan_digits": (12, 300, []),
}


def preset(name: str, mnist: str, overrides=()) -> tuple[int, int, list[str]]:
    """A tune_configs name's (pipeline epochs, plain-loop steps, `--set` overrides): its preset's,
    then the caller's, then one thread per worker, as every benchmark here compares them."""
    epochs, steps, sets = PRESETS.get(name, (2, 200, []))
    return epochs, steps, [s.format(mnist=mnist) for s in sets] + list(overrides) + \
        ["train.threads_per_worker=1"]


def plain_loop(cfg, steps: int) -> tuple[float, float, float, float]:
    """(median images/s, median CPU-wait, blocked and system shares) over windows of LOG_WINDOW steps of
    GANTraining.step in one process on pre-loaded, shuffled tensors (no Ray, no DDP): the
    statistics the pipeline's figures use."""
    torch.set_num_threads(cfg.train.threads_per_worker)
    data = load_source(cfg.data, seed=cfg.seed)
    x = preprocess_images(data.x, cfg.data.image_size, cfg.data.channels) \
        if data.kind == "image" else preprocess_points(data.x)
    x = torch.from_numpy(x)
    tr, _ = build_training(cfg, "cpu")  # seeded as a run's models, with the CPU's switches
    bs, gen = cfg.train.batch_size, torch.Generator().manual_seed(0)
    batches = len(x) // bs
    rates, shares, i = [], [], 0
    for window in range(1 + max(1, steps // LOG_WINDOW)):  # window 0 is the warm-up, as in the pipeline's
        timer = Window()
        for _ in range(LOG_WINDOW):
            if i % batches == 0:
                order = torch.randperm(len(x), generator=gen)
            j = (i % batches) * bs
            tr.step(x[order[j:j + bs]], gen)
            i += 1
        spent = timer.close()
        if window:
            rates.append(LOG_WINDOW * bs / spent.elapsed)
            shares.append([_known(v) for v in spent[1:]])
    return statistics.median(rates), *(statistics.median(col) for col in zip(*shares))


def _known(share) -> float:
    return float("nan") if share is None else share


def pipeline(config: str, workers: int, epochs: int, extra: list[str]) -> tuple[float, ...]:
    """(median images/s of the logged windows, median CPU-wait, blocked and system shares of rank
    0's training thread over the same windows, images/s over the logged span, wall seconds of
    train.py) of a real run."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "RAY_AUTH_MODE": "token"}
        cmd = [sys.executable, str(REPO / "pipelines" / "train.py"), "--config", config,
               "--num-workers", str(workers), "--set", f"train.epochs={epochs}",
               "--set", f"ray.storage_path={tmp}/ray", "--set", f"train.log_every_steps={LOG_WINDOW}",
               "--experiment", "bench", *extra]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"train.py failed:\n{proc.stderr[-3000:]}")
        client = MlflowClient(uri)
        run = client.search_runs([client.get_experiment_by_name("bench").experiment_id])[0]
        rates = client.get_metric_history(run.info.run_id, "images_per_s")
        seen = sorted(client.get_metric_history(run.info.run_id, "images_seen"), key=lambda m: m.step)
        span = (seen[-1].timestamp - seen[0].timestamp) / 1000
        mean = (seen[-1].value - seen[0].value) / span if span > 0 else float("nan")
        shares = [_after_warmup(m.value for m in client.get_metric_history(run.info.run_id, key))
                  for key in SHARES]
        return (_after_warmup(m.value for m in rates), *shares, mean, wall)


def _after_warmup(values) -> float:
    """Median of the logged windows after the first (warm-up), as the plain loop's."""
    values = list(values)
    return statistics.median(values[1:] or values) if values else float("nan")


def bench_config(name: str, scale: float, mnist: str, overrides: list[str], repeats: int) -> None:
    epochs, steps, sets = preset(name, mnist, overrides)
    config = str(REPO / "tune_configs" / f"{name}.yaml")
    epochs = max(1, round(epochs * scale))
    cfg = load_config(config, sets)
    extra = [a for s in sets for a in ("--set", s)]
    bs = cfg.train.batch_size
    print(f"\nconfig {name}: {cfg.model.family}, {cfg.data.source}, batch {bs}/worker, 1 thread/worker, "
          f"{epochs} epochs, {os.cpu_count()} CPUs")
    print(f"{'setup':44} {'images/s':>9} {'step ms':>8} {'cpu wait':>8} {'blocked':>8} {'system':>8} "
          f"{'run mean':>9} {'vs plain':>9} {'wall s':>7}")
    overheads, scalings = [], []
    plain_steps = max(2 * LOG_WINDOW, round(steps * scale))
    for r in range(1, repeats + 1):
        tag = f"round {r}: " if repeats > 1 else ""
        plain = [plain_loop(cfg, plain_steps)]
        rows = [(f"{tag}plain PyTorch loop, 1 process", *plain[0], float("nan"), float("nan"), 1, 1.0)]
        for w in (1, 2):
            run = pipeline(config, w, epochs, extra)
            plain.append(plain_loop(cfg, plain_steps))
            rows.append((f"{tag}pipeline, {w} Ray worker{'s' if w > 1 else ''} x 1 thread", *run, w,
                         run[0] / statistics.mean(p[0] for p in plain[-2:])))
            rows.append((f"{tag}plain PyTorch loop, again", *plain[-1], float("nan"), float("nan"), 1,
                         plain[-1][0] / plain[0][0]))
        for label, rate, wait, blocked, system, mean, wall, w, vs_plain in rows:
            print(f"{label:44} {rate:9.0f} {1000 * bs * w / rate:8.2f} {100 * wait:7.1f}% "
                  f"{100 * blocked:7.1f}% {100 * system:7.1f}% {mean:9.0f} {vs_plain:9.3f} {wall:7.1f}",
                  flush=True)
        overheads.append(1 / rows[1][-1])
        scalings.append(rows[3][-1] / rows[1][-1])
    print(_ratio_line("step overhead (1-worker step / plain step): ", overheads, "target <= 1.05"))
    print(_ratio_line("scaling (2 workers / 1 worker, images/s):   ", scalings, "target >= 1.8"))


def _ratio_line(label: str, ratios: list[float], target: str) -> str:
    """One round: its ratio; several: their median, then each round's."""
    if len(ratios) == 1:
        return f"{label}{ratios[0]:.3f}  ({target})"
    rounds = ", ".join(f"{r:.3f}" for r in ratios)
    return f"{label}median {statistics.median(ratios):.3f}  ({target})  (rounds: {rounds})"


def run_under_workers_allocator(overrides: list[str]) -> None:
    """Re-exec this process under the Ray workers' malloc settings (pipelines/run.py) unless they are
    set: glibc reads them at start, and without them the plain loop pays page faults (10% of a
    DCGAN step in the kernel) that the workers do not, which would flatter the pipeline."""
    env = worker_runtime_env(load_config(None, overrides)).get("env_vars")
    if env:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **env})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="dcgan_mnist,grid_mlp",
                   help=f"tune_configs names, comma-separated (presets: {', '.join(PRESETS)})")
    p.add_argument("--epochs-scale", type=float, default=1.0, help="multiply run lengths")
    p.add_argument("--mnist", default=str(MNIST))
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--repeats", type=int, default=1,
                   help="rounds of plain / 1 worker / 2 workers, each round back to back; the "
                        "ratios are the median over rounds (default 1)")
    args = p.parse_args()
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    run_under_workers_allocator(args.overrides)
    for name in (c.strip() for c in args.configs.split(",") if c.strip()):
        bench_config(name, args.epochs_scale, args.mnist, args.overrides, args.repeats)


if __name__ == "__main__":
    main()
