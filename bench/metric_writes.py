"""What one MLflow metric write costs rank 0's logging thread, by how many logging steps it
carries (each step: 11 metrics, as a grid-MLP run logs). Thread CPU time is what the training
thread loses under the GIL; it is why pipelines/run_log.py writes metrics together.

    .venv/bin/python bench/metric_writes.py [--calls 20]
"""
from __future__ import annotations

import argparse
import tempfile
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

KEYS = [f"metric_{i}" for i in range(11)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=20, help="writes timed per row of the table")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
        run_id = client.create_run(client.create_experiment("writes")).info.run_id
        step = 0
        print("steps/write  rows/write  cpu ms/write  wall ms/write  cpu ms/step")
        for per_write in (1, 1, 5, 15, 50):  # the first row pays the store's warm-up
            cpu, wall = time.thread_time(), time.perf_counter()
            for _ in range(args.calls):
                now = int(time.time() * 1000)
                rows = [Metric(k, 1.0, now, step + s) for s in range(per_write) for k in KEYS]
                step += per_write
                client.log_batch(run_id, metrics=rows, synchronous=True)
            cpu_ms = 1000 * (time.thread_time() - cpu) / args.calls
            wall_ms = 1000 * (time.perf_counter() - wall) / args.calls
            print(f"{per_write:11d} {per_write * len(KEYS):11d} {cpu_ms:13.1f} {wall_ms:14.1f} "
                  f"{cpu_ms / per_write:12.2f}")


if __name__ == "__main__":
    main()
