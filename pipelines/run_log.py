"""Rank 0's MLflow logging, off the training thread.

Writes go through a queue to one background thread, in order. Metrics are written together, at
most once every METRICS_EVERY_S (and at once before a checkpoint and on `flush`): each write
costs the SQLite store about 8 ms of Python, and that thread's time is taken from the training
thread's under the GIL (docs/benchmarks.md). Training never waits on the tracking server: while
it is unreachable or restarting, writes wait in the queue and are retried with backoff until
they land, with one warning when logging falls behind and one when it has caught up. Without a
run (a sweep trial, whose driver logs for it) metrics are dropped and figures wait in `pending`
to travel inside the next checkpoint."""
from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.tracking import metric_rows

MAX_BACKOFF_S = 30.0
METRICS_EVERY_S = 5.0
MAX_METRICS_PER_WRITE = 1000  # MLflow's limit for one log_batch
STEP_KEY = "images_seen"  # logged at every logging step


class RankZeroLog:
    def __init__(self, uri: str, run_id: str | None):
        self.client, self.run_id = (MlflowClient(uri), run_id) if run_id else (None, None)
        # A restarted worker group or a resumed run replays the steps after its checkpoint:
        # the ones already logged are not logged twice.
        self.logged_through = self._last_logged_step() if run_id else -1
        self.pending: list[tuple[str, str]] = []  # (file, folder) for the next checkpoint
        self._files = tempfile.TemporaryDirectory()  # copies: the caller may delete its file
        # (fn, args) calls, or (None, [Metric]) rows that are written together
        self._queue: queue.Queue = queue.Queue()
        # Writes are numbered in queue order; the first `_urgent_through` go without waiting for
        # a metrics slot (write_now, flush). `_taken` counts the writes the thread has taken.
        self._order = threading.Condition()
        self._queued = self._taken = self._urgent_through = 0
        self._behind_since = None  # when writes began to fail
        self._thread = None
        if self.client:
            self._thread = threading.Thread(target=self._drain, name="mlflow-log", daemon=True)
            self._thread.start()

    def metrics(self, values: dict, step: int) -> None:
        if self.client and step > self.logged_through:
            self._put((None, metric_rows(values, step)))  # stamped when measured, not written

    def artifact(self, path: str, folder: str) -> None:
        kept = shutil.copy(path, tempfile.mkdtemp(dir=self._files.name))
        if self.client:
            self._put((self.client.log_artifact, (self.run_id, kept, folder)))
        else:
            self.pending.append((kept, folder))

    def attach_pending(self, checkpoint_dir: str) -> None:
        for path, folder in self.pending:
            Path(checkpoint_dir, folder).mkdir(exist_ok=True)
            shutil.move(path, Path(checkpoint_dir, folder))
        self.pending.clear()

    def _last_logged_step(self) -> int:
        try:  # every log step records images_seen
            return max((m.step for m in self.client.get_metric_history(self.run_id, STEP_KEY)),
                       default=-1)
        except Exception as e:
            warnings.warn(f"MLflow unreachable at start, steps already logged may repeat: {e}")
            return -1

    def write_now(self) -> None:
        """Write the queued metrics without waiting for the next slot, and without blocking: a
        checkpoint is coming, and a run restarted from it replays only the steps after the last
        one logged, so every step before it must land."""
        with self._order:
            self._urgent_through = self._queued
            self._order.notify()

    def _put(self, item: tuple) -> None:
        with self._order:
            self._queued += 1
            self._queue.put(item)

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` s for every queued write to land; False (and a warning) if the
        server stayed unreachable."""
        if not self._thread:
            return True
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            self.write_now()
            time.sleep(0.05)
        left = self._queue.unfinished_tasks
        if left:
            warnings.warn(f"MLflow: {left} writes to run {self.run_id} still not logged after "
                          f"{timeout:.0f} s; training results are in the checkpoints")
        return not left

    def _drain(self) -> None:
        held, next_metrics = None, 0.0
        while True:
            fn, args = held or self._take()
            held, taken = None, 1
            if fn is None:  # metric rows: wait for the next write slot, then take every queued row
                with self._order:
                    self._order.wait_for(lambda: self._taken <= self._urgent_through,
                                         max(0.0, next_metrics - time.monotonic()))
                rows = list(args)
                while held is None:
                    item = self._take(block=False)
                    if item is None:
                        break
                    if item[0] is None:
                        rows += item[1]
                        taken += 1
                    else:
                        held = item  # written next, so writes stay in order
                for i in range(0, len(rows), MAX_METRICS_PER_WRITE):
                    chunk = rows[i:i + MAX_METRICS_PER_WRITE]
                    self._land(lambda: self.client.log_batch(self.run_id, chunk, synchronous=True))
                next_metrics = time.monotonic() + METRICS_EVERY_S
            else:
                self._land(lambda: fn(*args))
            for _ in range(taken):
                self._queue.task_done()
            if self._behind_since is not None and held is None and self._queue.empty():
                warnings.warn(f"MLflow logging caught up after "
                              f"{time.monotonic() - self._behind_since:.0f} s")
                self._behind_since = None

    def _take(self, block: bool = True) -> tuple | None:
        try:
            item = self._queue.get(block)
        except queue.Empty:
            return None
        with self._order:
            self._taken += 1
        return item

    def _land(self, write) -> None:
        """Call `write` until it succeeds, with backoff, warning once when logging falls behind.
        A refusal (4xx) is dropped, with every row written with it: retrying would not help."""
        delay = 1.0
        while True:
            try:
                return write()
            except MlflowException as e:
                if 400 <= e.get_http_status_code() < 500:
                    warnings.warn(f"MLflow refused a write, dropped: {e}")
                    return None
                failure = e
            except Exception as e:  # an outage must never cost the training run
                failure = e
            if self._behind_since is None:
                self._behind_since = time.monotonic()
                warnings.warn(f"MLflow logging failed, training goes on and the writes "
                              f"are retried until they land: {failure}")
            time.sleep(delay)
            delay = min(2 * delay, MAX_BACKOFF_S)
