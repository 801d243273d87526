"""Training throughput of the real pipeline (images/s) with 1 and 2 Ray workers, beside a plain
single-process PyTorch loop over the same model, per-worker batch and thread count.

    .venv/bin/python bench/throughput.py [--config tune_configs/dcgan_digits.yaml] [--epochs 12]

Pipeline figures are the median of the images/s windows rank 0 logs to MLflow (each window spans
`log_every_steps` steps, epoch boundaries and Ray reports included), first window dropped as
warm-up. Quote ratios from one run: the machine is shared and noisy."""
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

from gan_core.config import load_config  # noqa: E402
from gan_core.data import load_source  # noqa: E402
from gan_core.data.transforms import preprocess_images, preprocess_points  # noqa: E402
from gan_core.models import build_models  # noqa: E402
from gan_core.training import GANTraining, make_optimizers  # noqa: E402


def plain_loop(cfg, steps: int) -> float:
    """images/s of GANTraining.step in one process on pre-loaded tensors (no Ray, no DDP)."""
    torch.set_num_threads(cfg.train.threads_per_worker)
    data = load_source(cfg.data, seed=cfg.seed)
    x = preprocess_images(data.x, cfg.data.image_size, cfg.data.channels) \
        if data.kind == "image" else preprocess_points(data.x)
    x = torch.from_numpy(x)
    torch.manual_seed(cfg.seed)
    G, D = build_models(cfg)
    tr = GANTraining(G, D, *make_optimizers(G, D, cfg.train), cfg.loss, cfg.train.n_critic,
                     cfg.train.ema_half_life_images, cfg.train.batch_size)
    bs, gen = cfg.train.batch_size, torch.Generator().manual_seed(0)
    batches = len(x) // bs

    def run(n):
        for i in range(n):
            j = (i % batches) * bs
            tr.step(x[j:j + bs], gen)

    run(10)  # warm-up
    t0 = time.perf_counter()
    run(steps)
    return steps * bs / (time.perf_counter() - t0)


def pipeline(config: str, workers: int, epochs: int, extra: list[str]) -> tuple[float, float]:
    """(median images/s, wall seconds) of a real train.py run."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "RAY_AUTH_MODE": "token"}
        cmd = [sys.executable, str(REPO / "pipelines" / "train.py"), "--config", config,
               "--num-workers", str(workers), "--set", f"train.epochs={epochs}",
               "--set", f"ray.storage_path={tmp}/ray", "--set", "train.log_every_steps=10",
               "--experiment", "bench", *extra]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"train.py failed:\n{proc.stderr[-3000:]}")
        client = MlflowClient(uri)
        run = client.search_runs([client.get_experiment_by_name("bench").experiment_id])[0]
        rates = [m.value for m in client.get_metric_history(run.info.run_id, "images_per_s")]
        return statistics.median(rates[1:] or rates), wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "tune_configs" / "dcgan_digits.yaml"))
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--steps", type=int, default=300, help="steps of the plain loop")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    extra = [a for o in args.overrides for a in ("--set", o)]
    cfg = load_config(args.config, args.overrides)
    base = plain_loop(cfg, args.steps)
    rows = [("plain PyTorch loop, 1 process", base, None)]
    for w in (1, 2):
        rate, wall = pipeline(args.config, w, args.epochs, extra)
        rows.append((f"pipeline, {w} Ray worker{'s' if w > 1 else ''}", rate, wall))
    print(f"\nconfig {Path(args.config).name}: {cfg.model.family}, {cfg.data.source} "
          f"{cfg.data.image_size}px, batch {cfg.train.batch_size}/worker, "
          f"{cfg.train.threads_per_worker} thread/worker, {args.epochs} epochs")
    print(f"{'setup':34} {'images/s':>10} {'vs plain':>9} {'wall s':>8}")
    for name, rate, wall in rows:
        print(f"{name:34} {rate:10.0f} {rate / base:9.2f} {wall if wall else float('nan'):8.1f}")


if __name__ == "__main__":
    main()
