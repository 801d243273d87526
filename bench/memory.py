"""Peak resident memory per Ray Train worker (and of the driver and Ray's own processes) for the
default configs, by polling /proc while pipelines/train.py runs (Linux only).

    .venv/bin/python bench/memory.py [--configs dcgan_digits,dcgan_mnist,grid_mlp]
        [--mnist ../shared/data/mnist] [--interval 1.0]

Each config runs as shipped (its workers, batch, sampling, checkpoints) for a few epochs (see
EPOCHS), in a fresh MLflow store. Every `--interval` seconds the bench reads each descendant
process of train.py: VmHWM (the kernel's exact peak RSS since the process started) and PSS from
smaps_rollup (shared pages split between the processes that map them: torch's libraries and Ray's
object store count once across processes, so PSS adds up; sampled, so a peak between polls can
be missed). Workers are the processes titled ray::RayTrainWorker; `Ray system` sums every other
ray process (GCS, raylet, dashboard, Train controller, Ray Data coordinators, idle workers)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "data" / "mnist"
# config -> (epochs: enough for a sampling and a checkpoint epoch, overrides)
EPOCHS = {"dcgan_digits": (10, []), "dcgan_mnist": (2, ["data.path={mnist}"]), "grid_mlp": (2, [])}


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:  # the process ended between listing and reading
        return ""


def _kib(text: str, field: str) -> int:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def descendants(root: int) -> list[int]:
    children = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read(f"/proc/{entry}/stat")
            if stat:  # "pid (comm) state ppid ...": comm may hold spaces
                children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children[pid])
    return out


def watch(cmd: list[str], cwd: str, env: dict, interval: float) -> tuple[dict, float]:
    """{pid: (role, peak RSS KiB, peak PSS KiB)} of train.py's process tree, and wall seconds."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    peaks: dict[int, list] = {}
    while True:
        for pid in descendants(proc.pid):
            title = _read(f"/proc/{pid}/cmdline").replace("\0", " ")
            hwm = _kib(_read(f"/proc/{pid}/status"), "VmHWM")
            pss = _kib(_read(f"/proc/{pid}/smaps_rollup"), "Pss")
            role = ("worker" if "ray::RayTrainWorker" in title else "driver" if pid == proc.pid
                    else "ray" if "ray" in title else "other")
            old = peaks.get(pid, [role, 0, 0])
            peaks[pid] = [role if role != "ray" or old[0] == "ray" else old[0],  # IDLE -> worker
                          max(old[1], hwm), max(old[2], pss)]
        if proc.poll() is not None:
            break
        time.sleep(interval)
    _, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"train.py failed:\n{err[-3000:]}")
    return peaks, time.perf_counter() - t0


def measure(name: str, mnist: str, interval: float) -> tuple:
    epochs, sets = EPOCHS.get(name, (2, []))
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "RAY_AUTH_MODE": "token"}
        cmd = [sys.executable, str(REPO / "pipelines" / "train.py"), "--config",
               str(REPO / "tune_configs" / f"{name}.yaml"), "--set", f"train.epochs={epochs}",
               "--set", f"ray.storage_path={tmp}/ray", "--experiment", "bench"]
        for s in sets:
            cmd += ["--set", s.format(mnist=mnist)]
        peaks, wall = watch(cmd, tmp, env, interval)
    by_role = defaultdict(list)
    for role, hwm, pss in peaks.values():
        by_role[role].append((hwm, pss))
    return name, epochs, by_role, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="dcgan_digits,dcgan_mnist,grid_mlp")
    p.add_argument("--mnist", default=str(MNIST))
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    args = p.parse_args()
    rows = [measure(c.strip(), args.mnist, args.interval) for c in args.configs.split(",") if c.strip()]
    mib = 1024
    print(f"\n{'config':14} {'epochs':>6} {'workers':>7} {'worker peak RSS MiB':>20} {'worker peak PSS MiB':>20} "
          f"{'driver RSS':>11} {'Ray system RSS (n)':>19} {'all PSS':>8} {'wall s':>7}")
    for name, epochs, by_role, wall in rows:
        workers = by_role["worker"]
        rss = "/".join(f"{h / mib:.0f}" for h, _ in workers)
        pss = "/".join(f"{s / mib:.0f}" for _, s in workers)
        driver = sum(h for h, _ in by_role["driver"]) / mib
        ray_rss = sum(h for h, _ in by_role["ray"]) / mib
        total_pss = sum(s for v in by_role.values() for _, s in v) / mib
        ray_cell = f"{ray_rss:.0f} ({len(by_role['ray'])})"
        print(f"{name:14} {epochs:6} {len(workers):7} {rss:>20} {pss:>20} {driver:11.0f} "
              f"{ray_cell:>19} {total_pss:8.0f} {wall:7.1f}")
    print("RSS counts shared pages (torch, the object store) in every process; PSS splits them: "
          "`all PSS` sums each process's sampled peak PSS, an upper bound of the tree's peak")


if __name__ == "__main__":
    main()
