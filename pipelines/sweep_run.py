"""The driver side of a sweep: Ray, the MLflow parent run, the Tuner, the results table and the
best trial's generator in the registry."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import ray
from mlflow.tracking import MlflowClient
from ray import tune

from gan_core.config import ConfigError
from gan_core.data import ArrayData
from gan_core.sweep import Sweep
from pipelines.datasets import to_ray_dataset
from pipelines.run import log_floor, register_checkpoint, start
from pipelines.sweep_trial import run_trial
from pipelines.sweep_tracking import PARENT_TAG, TRIAL_TAG, SweepTracker
from pipelines.tracking import RUN_NAME_TAG, log_skipped, start_or_resume_run
from pipelines.tune import concurrency, scheduler, search_space

if TYPE_CHECKING:
    import pandas


def _space_params(sweep: Sweep) -> dict:
    out = {f"space.{k}": f"{d.kind}{d.values}" for k, d in sweep.space.items()}
    out.update({"metric": sweep.metric, "mode": sweep.mode, "num_samples": sweep.num_samples,
                "scheduler": sweep.scheduler,
                **{f"scheduler.{k}": v for k, v in sweep.scheduler_args.items()}})
    return out


def run_sweep(sweep: Sweep, data: ArrayData, root: str, resume: bool, config_path: str) -> int:
    """`root`: the checked storage path (train.storage_path) the sweep's trials live under."""
    base = sweep.base
    try:
        uri, client, eval_inputs = start(base, data, prefix="base.")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    floor = eval_inputs.pop("eval_floor", None)  # the trials share it: logged on the parent
    limit = concurrency(sweep, ray.cluster_resources())
    exp_dir = Path(root, sweep.name) if "://" not in root else None
    if resume and not tune.Tuner.can_restore(f"{root}/{sweep.name}"):
        print(f"error: --resume: no sweep '{sweep.name}' under {root}", file=sys.stderr)
        return 2
    if not resume and exp_dir is not None and exp_dir.exists():
        print(f"error: sweep '{sweep.name}' already exists under {root}: pass --resume to "
              "continue it, or rename the sweep", file=sys.stderr)
        return 2
    parent = _parent_run(client, base.mlflow.experiment, sweep.name) if resume else None
    if parent is not None and parent.info.status == "FINISHED":
        print(f"sweep '{sweep.name}' already finished (MLflow run {parent.info.run_id}); "
              "nothing to resume")
        return 0
    if parent is None:  # a new sweep, or one interrupted before its MLflow run existed
        parent_id, _ = start_or_resume_run(client, base.mlflow.experiment, sweep.name,
                                           _space_params(sweep), tags={PARENT_TAG: "parent"},
                                           new=True)
        client.log_artifact(parent_id, config_path, "sweep")
        log_skipped(client, parent_id, data.skipped)
        log_floor(client, parent_id, floor)
    else:
        parent_id = parent.info.run_id
        client.update_run(parent_id, status="RUNNING")
    resumed = parent is not None
    exp_id = client.get_run(parent_id).info.experiment_id
    print(f"sweep '{sweep.name}' ({'resumed' if resumed else 'new'}): MLflow run {parent_id}, "
          f"up to {limit} trials at once")
    try:
        results = _fit(sweep, data, eval_inputs, root, uri, exp_id, parent_id, limit, resume)
        return _report(sweep, client, exp_id, parent_id, results)
    except BaseException as e:  # Ctrl-C included: the parent run never stays RUNNING
        client.set_tag(parent_id, "failure", f"{type(e).__name__}: {e}"[:5000])
        client.set_terminated(parent_id, "FAILED")
        raise


def _parent_run(client: MlflowClient, experiment: str, name: str):
    """The newest MLflow parent run of sweep `name`, if any."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], f"tags.`{RUN_NAME_TAG}` = '{name}' and "
                              f"tags.`{PARENT_TAG}` = 'parent'", max_results=1,
                              order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def _fit(sweep: Sweep, data: ArrayData, eval_inputs: dict, root: str, uri: str, exp_id: str,
         parent_id: str, limit: int, resume: bool):
    base = sweep.base
    dataset = to_ray_dataset(data, base)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, sweep=sweep, dataset=dataset, eval_inputs=eval_inputs,
                             storage=f"{root}/{sweep.name}-train", uri=uri),
        {"CPU": 0.01})  # the trial only drives; its Train workers hold the resources
    path = f"{root}/{sweep.name}"
    if resume:
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space=search_space(sweep),
            tune_config=tune.TuneConfig(metric=sweep.metric, mode=sweep.mode,
                                        scheduler=scheduler(sweep), num_samples=sweep.num_samples,
                                        max_concurrent_trials=limit),
            run_config=tune.RunConfig(
                name=sweep.name, storage_path=root, verbose=1,
                callbacks=[SweepTracker(uri, exp_id, parent_id, sweep)],
                # PBT restores donors' checkpoints by reference, possibly much later: keep all
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=None if sweep.scheduler == "pbt" else base.ray.num_to_keep)))
    return tuner.fit()


def results_table(sweep: Sweep, results) -> "pandas.DataFrame":
    df = results.get_dataframe()  # each trial's last report, as the registry compares
    cols = ["trial_id"] + [f"config/{k}" for k in sweep.space] + \
        [c for c in (sweep.metric, "training_iteration", "images_seen") if c in df.columns]
    table = df[[c for c in cols if c in df.columns]].rename(
        columns=lambda c: c.removeprefix("config/")).rename(columns={"training_iteration": "epochs"})
    if sweep.metric in table.columns:
        table = table.sort_values(sweep.metric, ascending=sweep.mode == "min")
    return table


def _report(sweep: Sweep, client: MlflowClient, exp_id: str, parent_id: str, results) -> int:
    table = results_table(sweep, results)
    print(table.to_string(index=False))
    left = sweep.num_trials() - results.num_terminated - results.num_errors
    if left > 0:  # Ctrl-C: Tune saved its state and returned early
        for run in client.search_runs([exp_id],
                                      f"tags.`mlflow.parentRunId` = '{parent_id}' and "
                                      "attributes.status = 'RUNNING'"):
            client.set_terminated(run.info.run_id, "KILLED")
        client.set_tag(parent_id, "failure", "interrupted; continue with --resume")
        client.set_terminated(parent_id, "KILLED")
        print(f"sweep '{sweep.name}' interrupted with {left} trial(s) unfinished: re-run with "
              "--resume", file=sys.stderr)
        return 130
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp, "sweep_results.csv")
        table.to_csv(csv, index=False)
        client.log_artifact(parent_id, str(csv))
    for err in results.errors:
        print(f"trial error: {str(err)[:500]}", file=sys.stderr)
    try:
        best = results.get_best_result(sweep.metric, sweep.mode, scope="last")
    except RuntimeError:
        best = None
    if best is None or best.checkpoint is None:
        client.set_terminated(parent_id, "FAILED")
        print(f"error: no trial reported a finite {sweep.metric!r} with a checkpoint", file=sys.stderr)
        return 1
    trial_run = _trial_run_id(client, sweep, exp_id, best.metrics["trial_id"])
    line, _, _ = register_checkpoint(client, trial_run, best.checkpoint,
                                     sweep.trial_config(best.config), sweep.metric, sweep.mode)
    client.log_metric(parent_id, f"best_{sweep.metric}", float(best.metrics[sweep.metric]))
    client.set_tag(parent_id, "best_trial_run", trial_run)
    client.set_terminated(parent_id, "FINISHED")
    print(f"best trial: {best.metrics.get('trial_id')} {sweep.metric}="
          f"{best.metrics[sweep.metric]:.4g} with {dict(best.config)}")
    print(line)
    return 0


def _trial_run_id(client: MlflowClient, sweep: Sweep, exp_id: str, trial_id: str) -> str:
    (run,) = client.search_runs([exp_id], f"tags.`{TRIAL_TAG}` = '{sweep.name}/{trial_id}'",
                                max_results=1)
    return run.info.run_id
