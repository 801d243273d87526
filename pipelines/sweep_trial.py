"""One sweep trial: a Tune function that builds and fits a multi-worker TorchTrainer (Ray Train V2)
and hands every epoch's metrics and checkpoint to Tune.

Tune owns the checkpoints (Ray's own TuneReportCallback forwards only metrics, which PBT cannot
exploit): a Train callback passes each report through a one-slot queue, and the trial thread
calls `tune.report` with the checkpoint, which Tune copies into the trial's directory. A trial
restored by PBT (or by `--resume`) starts a fresh Train run that loads Tune's checkpoint, with
the trial's (mutated) learning rates written into the restored optimizers."""
from __future__ import annotations

import math
import threading
import uuid

from ray import tune
from ray.train.v2.api.callback import UserCallback
from ray.util.queue import Empty, Queue

from gan_core.sweep import Sweep
from pipelines.run import make_trainer
from pipelines.run_marker import read_divergence


class ForwardReports(UserCallback):
    """Runs on the Train controller: rank 0's metrics and the checkpoint, one at a time (the
    one-slot queue keeps Train at most a report ahead of Tune)."""

    def __init__(self, queue: Queue):
        self.queue = queue

    def after_report(self, run_context, metrics, checkpoint) -> None:
        self.queue.put((dict(metrics[0]), checkpoint))


def _tune_metrics(metrics: dict, sweep: Sweep) -> dict:
    """A missing or non-finite objective (a skipped evaluation, a collapsing trial) becomes the
    worst value, so ASHA stops the trial and PBT never picks it as a donor."""
    value = metrics.get(sweep.metric)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        metrics = {**metrics, sweep.metric: math.inf if sweep.mode == "min" else -math.inf}
    return metrics


def run_trial(params: dict, *, sweep: Sweep, dataset, eval_inputs: dict, storage: str,
              uri: str) -> None:
    """The Tune trainable. `params`: dotted config key -> this trial's value."""
    cfg = sweep.trial_config(params)
    ctx = tune.get_context()
    restored = tune.get_checkpoint()
    # a fresh Train run per (re)start: a restored trial's state is Tune's checkpoint, never the
    # Train run it had before (after a PBT exploit that run belongs to another config)
    cfg.name = f"{ctx.get_trial_id()}-{uuid.uuid4().hex[:8]}"
    queue = Queue(maxsize=1, actor_options={"num_cpus": 0})
    extra = {**eval_inputs, "init_checkpoint": restored}
    # Train keeps every checkpoint; this thread deletes each one once Tune holds a copy and a
    # newer one exists (Train's own deletion could race Tune's copy)
    trainer = make_trainer(cfg, dataset, uri, None, storage, extra,
                           callbacks=[ForwardReports(queue)], keep_all_checkpoints=True)
    outcome: dict = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as e:  # re-raised in the trial thread
            outcome["error"] = e

    thread = threading.Thread(target=fit, name="train-fit", daemon=True)
    thread.start()
    forwarded = None
    while True:
        try:
            metrics, checkpoint = queue.get(timeout=1.0)
        except Empty:
            if not thread.is_alive() and queue.empty():
                break
            continue
        if metrics.get("diverged"):
            continue  # surfaced below from the run's marker
        copy = tune.Checkpoint(checkpoint.path, checkpoint.filesystem) if checkpoint else None
        tune.report(_tune_metrics(metrics, sweep), checkpoint=copy)
        if checkpoint:
            if forwarded:
                forwarded.filesystem.delete_dir(forwarded.path)
            forwarded = checkpoint
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    reason = read_divergence(storage, cfg.name)
    if reason:
        raise RuntimeError(f"trial diverged: {reason}")
