"""How fast the same single-thread step runs depending on what the machine's other CPU does:
bench/throughput.py's plain loop pinned to one CPU, with the other CPU idle, running a pure-Python
spin loop, or running single-thread torch matmuls (as a second training process would).

    .venv/bin/python bench/neighbour.py [--config dcgan_mnist] [--steps 60] [--repeats 2]

The pipeline's 1-worker run differs from the plain loop in exactly this: Ray's processes and Ray
Data's work run on the other CPU while the training thread computes. On a VM the effect of a busy
neighbour need not be a slowdown (the host's scheduling and frequency decisions see both vCPUs),
so this measures it rather than assuming it. Each round runs idle, python, torch, idle; `vs idle`
is the rate over the mean of the round's two idle runs. Needs Linux and at least 2 CPUs."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import MNIST, REPO, plain_loop, preset  # noqa: E402

from gan_core.config import load_config  # noqa: E402

NEIGHBOURS = {
    "python": "while True: pass",
    "torch": "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True: a @ a",
}


def run(cfg, steps: int, neighbour: str | None, cpu: int) -> tuple[float, float, float, float]:
    """The plain loop's (images/s, cpu wait, blocked, system) with `neighbour` spinning on `cpu`."""
    proc = None
    if neighbour:
        proc = subprocess.Popen([sys.executable, "-c", NEIGHBOURS[neighbour]],
                                preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        time.sleep(2)  # torch's import: the neighbour is busy before the loop starts
    try:
        return plain_loop(cfg, steps)
    finally:
        if proc:
            proc.kill()
            proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="dcgan_mnist", help="a tune_configs name")
    p.add_argument("--steps", type=int, default=60, help="plain-loop steps per measurement")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--mnist", default=str(MNIST))
    args = p.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        p.error(f"needs 2 CPUs, this process may use {len(cpus)}")
    _, _, sets = preset(args.config, args.mnist)
    cfg = load_config(str(REPO / "tune_configs" / f"{args.config}.yaml"), sets)
    os.sched_setaffinity(0, {cpus[0]})
    print(f"config {args.config}: plain loop on CPU {cpus[0]}, neighbour on CPU {cpus[1]}, "
          f"{args.steps} steps, batch {cfg.train.batch_size}")
    print(f"{'round':>5} {'other CPU':10} {'images/s':>9} {'cpu wait':>8} {'blocked':>8} {'system':>8} "
          f"{'vs idle':>8}")
    ratios: dict[str, list[float]] = {}
    for r in range(1, args.repeats + 1):
        rows = [(n, run(cfg, args.steps, n, cpus[1])) for n in (None, "python", "torch", None)]
        idle = statistics.mean(rate for n, (rate, *_) in rows if n is None)
        for n, (rate, wait, blocked, system) in rows:
            ratios.setdefault(n or "idle", []).append(rate / idle)
            print(f"{r:5} {n or 'idle':10} {rate:9.1f} {100 * wait:7.1f}% {100 * blocked:7.1f}% "
                  f"{100 * system:7.1f}% {rate / idle:8.3f}", flush=True)
    print("median vs idle: " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
