"""Step time of GANTraining.step with each speed switch of `train` (docs/performance.md), in one
process on one thread (as `train.threads_per_worker: 1`), on synthetic batches: the switches'
own cost or gain, without Ray or data loading.

    .venv/bin/python bench/switches.py [--steps 10] [--repeats 8] [--compile] [--device cpu]

Switches are built once each, warmed up 5 steps (compilation included), then timed in interleaved
repeats of `--steps` steps so that load on a shared machine falls on all of them alike; the table
prints the median ms/step and the speed-up over the baseline (all switches off)."""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_core.config import load_config  # noqa: E402
from gan_core.models import build_models  # noqa: E402
from gan_core.speedups import as_input, prepare_models, resolve  # noqa: E402
from gan_core.training import GANTraining, make_optimizers  # noqa: E402

MODELS = {
    "DCGAN 32x32, width 32, batch 64": (["model.family=dcgan", "data.image_size=32",
                                          "data.channels=1", "model.g_width=32",
                                          "model.d_width=32", "train.batch_size=64"], (1, 32, 32)),
    "MLP on the ring, batch 256": (["model.family=mlp", "data.source=ring",
                                    "train.batch_size=256"], (2,)),
}
# every switch off, whatever "auto" would pick on this device
OFF = ["train.channels_last=false", "train.fused_adam=false", "train.precision=fp32"]
SWITCHES = {"baseline": [], "channels_last": ["train.channels_last=true"],
            "fused_adam": ["train.fused_adam=true"], "bf16": ["train.precision=bf16"]}


def build(sets: list[str], shape: tuple[int, ...], device: str):
    cfg = load_config(None, [*OFF, *sets])  # the switch under test overrides its "off"
    fast = resolve(cfg.train, device)
    torch.manual_seed(0)
    G, D = build_models(cfg)
    G.to(device), D.to(device)
    prepare_models(G, D, fast, d_double_backward=False)
    opt_g, opt_d = make_optimizers(G, D, cfg.train, fast.fused_adam)
    tr = GANTraining(G, D, opt_g, opt_d, cfg.loss, 1, cfg.train.ema_half_life_images,
                     cfg.train.batch_size, fast.autocast)
    if tr.G_ema is not None:
        tr.G_ema.to(device)
    x = as_input(torch.rand(cfg.train.batch_size, *shape, device=device) * 2 - 1, fast)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        tr.step(x, gen)
    return tr, x, gen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--compile", action="store_true", help="also time train.compile=true")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(1)
    switches = {**SWITCHES, **({"compile": ["train.compile=true"]} if args.compile else {})}
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    print(f"{'model':34s} {'switch':14s} {'ms/step':>9s} {'speed-up':>9s}")
    for model, (sets, shape) in MODELS.items():
        runs = {sw: build([*sets, *extra], shape, args.device) for sw, extra in switches.items()}
        times: dict[str, list[float]] = {sw: [] for sw in switches}
        for _ in range(args.repeats):
            for sw, (tr, x, gen) in runs.items():
                sync()
                start = time.perf_counter()
                for _ in range(args.steps):
                    tr.step(x, gen)
                sync()
                times[sw].append((time.perf_counter() - start) / args.steps * 1e3)
        base = statistics.median(times["baseline"])
        for sw, ts in times.items():
            m = statistics.median(ts)
            print(f"{model:34s} {sw:14s} {m:9.2f} {base / m:8.2f}x")


if __name__ == "__main__":
    main()
