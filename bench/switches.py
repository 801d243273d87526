"""Step time of GANTraining.step with each speed switch of `train` (docs/performance.md), in one
process on one thread (as `train.threads_per_worker: 1`), on synthetic batches: the switches'
own cost or gain, without Ray or data loading.

    .venv/bin/python bench/switches.py [--steps 10] [--repeats 8] [--compile] [--device cpu]
        [--models small,mlp] [--peak-tflops F]

Switches are built once each, warmed up 5 steps (compilation included), then timed in interleaved
repeats of `--steps` steps so that load on a shared machine falls on all of them alike; the table
prints the median ms/step, images/s and the speed-up over the baseline (all switches off). `auto`
is what the device gets by default; `auto+compile` adds train.compile. TFLOP/s counts the
matrix products and convolutions of one step (torch's FlopCounterMode: forward and backward, 2
FLOPs a multiply-add); `% peak` divides it by `--peak-tflops` (the device's dense bf16 peak).
`--kernels` (GPU) adds the GPU kernels each step launches and the share of the (unprofiled)
median step time the GPU spends running them (torch.profiler's trace over `--steps` steps): a
low share means the step is bound by the host launching kernels, not by the GPU."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gan_core.build import build_training  # noqa: E402
from gan_core.config import load_config  # noqa: E402
from gan_core.speedups import as_input  # noqa: E402
from gan_core.training import GANTraining  # noqa: E402

# name -> (label, config file or None, overrides, shape of one real sample)
MODELS = {
    "small": ("DCGAN 32x32, width 32, batch 64", None,
              ["model.family=dcgan", "data.image_size=32", "data.channels=1", "model.g_width=32",
               "model.d_width=32", "train.batch_size=64"], (1, 32, 32)),
    "mnist": ("dcgan_mnist.yaml (28x28), batch 64", "dcgan_mnist.yaml", [], (1, 28, 28)),
    "dcgan64": ("DCGAN 64x64x3, width 128, batch 256", None,
                ["model.family=dcgan", "data.image_size=64", "data.channels=3",
                 "model.g_width=128", "model.d_width=128", "train.batch_size=256"], (3, 64, 64)),
    "mlp": ("MLP on the ring, batch 256", None,
            ["model.family=mlp", "data.source=ring", "train.batch_size=256"], (2,)),
}
# every switch off, whatever "auto" would pick on this device
OFF = ["train.channels_last=false", "train.fused_adam=false", "train.precision=fp32"]
SWITCHES = {"baseline": OFF, "channels_last": [*OFF, "train.channels_last=true"],
            "fused_adam": [*OFF, "train.fused_adam=true"], "bf16": [*OFF, "train.precision=bf16"],
            "auto": []}


def build(model: str, switches: list[str], device: str):
    _, config, sets, shape = MODELS[model]
    cfg = load_config(str(REPO / "tune_configs" / config) if config else None,
                      [*sets, *switches], check_paths=False)  # the switch overrides its "off"
    tr, fast = build_training(cfg, device)
    x = as_input(torch.rand(cfg.train.batch_size, *shape, device=device) * 2 - 1, fast)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        tr.step(x, gen)
    return tr, x, gen


def step_flops(tr: GANTraining, x, gen) -> int:
    with FlopCounterMode(display=False) as counter:
        tr.step(x, gen)
    return counter.get_total_flops()


def kernels(tr: GANTraining, x, gen, steps: int, trace: str) -> tuple[float, float]:
    """(GPU kernels per step, seconds per step some kernel ran) over `steps` steps."""
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            tr.step(x, gen)
        torch.cuda.synchronize()
    prof.export_chrome_trace(trace)
    with open(trace) as f:
        spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in json.load(f)["traceEvents"]
                       if e.get("cat") == "kernel")
    busy, end = 0.0, float("-inf")  # union of the kernels' intervals, in microseconds
    for a, b in spans:
        busy += max(0.0, b - max(a, end))
        end = max(end, b)
    return len(spans) / steps, busy / 1e6 / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--compile", action="store_true", help="also time auto+compile")
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", default="small,mlp", help=f"comma-separated, of {','.join(MODELS)}")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's peak (e.g. 989 for an H200's dense bf16)")
    p.add_argument("--kernels", action="store_true", help="GPU kernels per step and GPU busy share")
    args = p.parse_args()
    cuda = torch.device(args.device).type == "cuda"
    if args.kernels and not cuda:
        p.error("--kernels counts GPU kernels: it needs --device cuda")
    models = args.models.split(",")
    if unknown := set(models) - set(MODELS):
        p.error(f"--models: unknown {sorted(unknown)}; known: {', '.join(MODELS)}")
    torch.set_num_threads(1)
    switches = {**SWITCHES, **({"auto+compile": ["train.compile=true"]} if args.compile else {})}
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    print(f"{'model':38s} {'switch':14s} {'ms/step':>9s} {'images/s':>9s} {'speed-up':>9s} "
          f"{'TFLOP/s':>8s} {'% peak':>7s}" + (f" {'kernels':>8s} {'GPU busy':>8s}" if args.kernels else ""))
    for model in models:
        runs = {sw: build(model, extra, args.device) for sw, extra in switches.items()}
        flops = step_flops(*runs["baseline"])
        times: dict[str, list[float]] = {sw: [] for sw in switches}
        for _ in range(args.repeats):
            for sw, (tr, x, gen) in runs.items():
                sync()
                start = time.perf_counter()
                for _ in range(args.steps):
                    tr.step(x, gen)
                sync()
                times[sw].append((time.perf_counter() - start) / args.steps)
        base = statistics.median(times["baseline"])
        for sw, ts in times.items():
            m = statistics.median(ts)
            tflops = flops / m / 1e12
            peak = f"{100 * tflops / args.peak_tflops:6.2f}%" if args.peak_tflops else f"{'-':>7s}"
            row = f"{MODELS[model][0]:38s} {sw:14s} {m * 1e3:9.2f} {len(runs[sw][1]) / m:9.0f} " \
                  f"{base / m:8.2f}x {tflops:8.3f} {peak}"
            if args.kernels:
                with tempfile.TemporaryDirectory() as tmp:
                    n, busy = kernels(*runs[sw], args.steps, f"{tmp}/trace.json")
                row += f" {n:8.0f} {100 * busy / m:7.1f}%"
            print(row, flush=True)


if __name__ == "__main__":
    main()
