"""MLflow for a sweep, written from the Tune driver alone (SQLite tolerates one writer): a parent
run per sweep, a nested run per trial with its params, per-epoch metrics and sample grids."""
from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path

from mlflow.tracking import MlflowClient
from ray import tune

from gan_core.sweep import Sweep
from pipelines.tracking import RUN_NAME_TAG, log_metrics

TRIAL_TAG = "gan.sweep_trial"
PARENT_TAG = "gan.sweep"
# Tune's bookkeeping, not the run's figures
_TUNE_KEYS = {"training_iteration", "timestamp", "time_this_iter_s", "time_total_s", "pid",
              "time_since_restore", "iterations_since_restore"}


def _safe(method):
    """Tracking trouble (a locked SQLite file, a restarting server) warns; the sweep goes on."""

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as e:
            warnings.warn(f"MLflow logging failed in {method.__name__}, the sweep goes on: {e}")

    return wrapped


class SweepTracker(tune.Callback):
    def __init__(self, uri: str, experiment_id: str, parent_run_id: str, sweep: Sweep):
        self.uri, self.experiment_id, self.parent = uri, experiment_id, parent_run_id
        self.sweep = sweep
        self.runs: dict[str, str] = {}  # trial id -> MLflow run id
        self._client: MlflowClient | None = None

    def __getstate__(self) -> dict:  # Tune saves its callbacks with the experiment state
        return {**self.__dict__, "_client": None}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.uri)
        return self._client

    def run_id(self, trial) -> str:
        """The trial's nested run: found again on `--resume`, created otherwise."""
        if trial.trial_id in self.runs:
            return self.runs[trial.trial_id]
        key = f"{self.sweep.name}/{trial.trial_id}"
        found = self.client.search_runs([self.experiment_id], f"tags.`{TRIAL_TAG}` = '{key}'",
                                        max_results=1)
        if found:
            run_id = found[0].info.run_id
        else:
            cfg = self.sweep.trial_config(trial.config)
            run = self.client.create_run(self.experiment_id, run_name=trial.trial_id, tags={
                "mlflow.parentRunId": self.parent, TRIAL_TAG: key,
                RUN_NAME_TAG: f"{self.sweep.name}-{trial.trial_id}"})
            run_id = run.info.run_id
            for k, v in cfg.flat().items():
                self.client.log_param(run_id, k, "null" if v is None else v)
        self.runs[trial.trial_id] = run_id
        return run_id

    @_safe
    def on_trial_start(self, iteration, trials, trial, **info):
        self.client.update_run(self.run_id(trial), status="RUNNING")

    @_safe
    def on_trial_result(self, iteration, trials, trial, result, **info):
        values = {k: v for k, v in result.items() if k not in _TUNE_KEYS
                  and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        log_metrics(self.client, self.run_id(trial), values, int(result.get("step", iteration)))

    @_safe
    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        with checkpoint.as_directory() as d:
            for png in sorted(Path(d, "samples").glob("*.png")):
                self.client.log_artifact(self.run_id(trial), str(png), "samples")

    @_safe
    def on_trial_complete(self, iteration, trials, trial, **info):
        self.client.set_terminated(self.run_id(trial), "FINISHED")

    @_safe
    def on_trial_error(self, iteration, trials, trial, **info):
        run_id = self.run_id(trial)
        error = getattr(trial, "error_file", None) or "see the Tune trial's error file"
        self.client.set_tag(run_id, "failure", str(error)[:5000])
        self.client.set_terminated(run_id, "FAILED")
