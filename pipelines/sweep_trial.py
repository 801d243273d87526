"""One sweep trial: a Tune function that builds and fits a multi-worker TorchTrainer (Ray Train V2)
and hands every epoch's metrics and checkpoint to Tune.

Tune owns the checkpoints (Ray's own TuneReportCallback forwards only metrics, which PBT cannot
exploit): a Train callback passes each report through a one-slot queue, and the trial thread
calls `tune.report` with the checkpoint, which Tune copies into the trial's directory. A trial
restored by PBT (or by `--resume`) starts a fresh Train run that loads Tune's checkpoint, with
the trial's (mutated) learning rates written into the restored optimizers."""
from __future__ import annotations

import threading
import uuid

from ray import tune
from ray.train import Checkpoint
from ray.train.v2.api.callback import UserCallback
from ray.util.queue import Empty, Queue

from gan_core.sweep import Sweep
from pipelines.run import make_trainer
from pipelines.run_marker import read_divergence


class ForwardReports(UserCallback):
    """Runs on the Train controller: rank 0's metrics and the checkpoint path, one at a time."""

    def __init__(self, queue: Queue):
        self.queue = queue

    def after_report(self, run_context, metrics, checkpoint) -> None:
        # Blocks while the previous report is still being copied, so Train cannot delete a
        # checkpoint (num_to_keep) before Tune has its copy.
        self.queue.put((dict(metrics[0]), checkpoint.path if checkpoint else None))


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
    extra = {**eval_inputs, "report_every_epoch": True}
    if restored is not None:
        extra["init_checkpoint"] = restored.path
    trainer = make_trainer(cfg, dataset, uri, None, storage, extra,
                           callbacks=[ForwardReports(queue)])
    outcome: dict = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as e:  # re-raised in the trial thread
            outcome["error"] = e

    thread = threading.Thread(target=fit, name="train-fit", daemon=True)
    thread.start()
    while True:
        try:
            metrics, path = queue.get(timeout=1.0)
        except Empty:
            if not thread.is_alive() and queue.empty():
                break
            continue
        if metrics.get("diverged"):
            continue  # surfaced below from the run's marker
        tune.report(metrics, checkpoint=Checkpoint.from_directory(path) if path else None)
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    reason = read_divergence(storage, cfg.name)
    if reason:
        raise RuntimeError(f"trial diverged: {reason}")
