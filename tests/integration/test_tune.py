"""Sweeps through the real pipelines/tune.py on a local Ray cluster (2 CPUs) with a throwaway
MLflow store: ASHA registers the best trial, PBT really transfers state, an interrupted sweep
resumes, and a sweep the cluster cannot hold fails before any trial starts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from gan_core.checkpoint import load_state
from tests.conftest import REPO, explain, in_process_ray

pytestmark = pytest.mark.integration

SMALL = {"data.num_samples": 32768, "train.batch_size": 128, "train.log_every_steps": 32,
         "ray.cpus_per_worker": 0.25}


def sweep_file(workspace, name: str, epochs: int, overrides: dict | None = None, **spec) -> str:
    body = {"name": name, "base": str(REPO / "tune_configs" / "grid_mlp.yaml"),
            "overrides": {**SMALL, "train.epochs": epochs,
                          "ray.storage_path": str(workspace.path / "ray"), **(overrides or {})},
            "metric": "kl", "mode": "min", **spec}
    path = workspace.path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def runs_of(workspace, parent_id: str):
    client = workspace.client()
    exp = client.get_experiment_by_name("gan")
    return client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")


def parent_run(workspace, name: str):
    client = workspace.client()
    exp = client.get_experiment_by_name("gan")
    (run,) = client.search_runs([exp.experiment_id], f"tags.`gan.run_name` = '{name}'")
    return run


def test_asha_sweep_registers_the_best_trial_with_nested_runs(workspace):
    path = sweep_file(workspace, "asha", epochs=3, num_samples=4,
                      scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2},
                      search_space={"train.lr_g": {"loguniform": [1e-4, 2e-3]},
                                    "loss.name": {"choice": ["nonsaturating", "hinge"]}})
    # beside another program's local Ray instance, which once left the trials ASHA stopped
    # holding their CPUs and hung the sweep (pipelines.run.init_ray)
    with in_process_ray():
        proc = workspace.run("tune.py", "--config", path, timeout=900)
    assert proc.returncode == 0, explain(proc)

    client = workspace.client()
    parent = parent_run(workspace, "asha")
    assert parent.info.status == "FINISHED"
    assert parent.data.params["space.train.lr_g"] == "loguniform[0.0001, 0.002]"
    trials = runs_of(workspace, parent.info.run_id)
    assert len(trials) == 4 and all(t.info.status == "FINISHED" for t in trials)
    for t in trials:  # params, per-epoch metrics and sample grids, all from the driver
        assert {"train.lr_g", "loss.name", "data.source"} <= set(t.data.params)
        # one evaluation per epoch run; KL is logged whenever it is finite: a trial whose samples
        # hit no mode (KL infinite) in its one epoch before ASHA stopped it has none to show
        modes = {m.step: m.value for m in client.get_metric_history(t.info.run_id, "modes")}
        kl = {m.step for m in client.get_metric_history(t.info.run_id, "kl")}
        assert 1 <= len(modes) <= 3 and kl == {step for step, n in modes.items() if n > 0}
        assert [a.path for a in client.list_artifacts(t.info.run_id, "samples")]

    # the table artifact lists every trial; the champion is the trial with the lowest last kl
    local = client.download_artifacts(parent.info.run_id, "sweep_results.csv", str(workspace.path))
    table = pd.read_csv(local)
    assert len(table) == 4 and table["kl"].is_monotonic_increasing
    assert table["kl"].iloc[0] < table["kl"].iloc[-1]  # the trials differ: a real choice
    version = client.get_model_version_by_alias("grid-mlp", "champion")
    by_trial = {t.data.tags["gan.sweep_trial"].split("/")[1]: t for t in trials}
    winners = {by_trial[tid].info.run_id for tid, kl in zip(table["trial_id"], table["kl"])
               if kl == table["kl"].iloc[0]}
    assert version.run_id in winners and parent.data.tags["best_trial_run"] == version.run_id
    assert client.get_run(version.run_id).data.metrics["kl"] == table["kl"].iloc[0]
    assert "champion moved to v1" in proc.stdout

    again = workspace.run("tune.py", "--config", path)  # a finished sweep is not silently rerun
    assert again.returncode == 2 and "--resume" in again.stderr


def test_pbt_exploit_continues_from_the_donor_state_with_mutated_rates(workspace):
    """Two trials, synchronous PBT after epoch 1: the worse trial must go on from the better
    one's checkpoint (epoch 2 next, not a restart) with the donor's rate x 0.8 or x 1.2 in its
    optimizers (the reported lr_g is read from them). Exact state transfer: test_training.py."""
    # constant rates: with grid_mlp's lr_decay the reported rate of epoch 2 would be decayed
    path = sweep_file(workspace, "pbt", epochs=2, num_samples=2, overrides={"train.lr_decay": 0.0},
                      scheduler={"name": "pbt", "perturbation_interval": 1,
                                 "quantile_fraction": 0.5, "resample_probability": 0.0,
                                 "synch": True},
                      search_space={"train.lr_g": {"loguniform": [1e-4, 2e-3]}})
    proc = workspace.run("tune.py", "--config", path, timeout=900)
    assert proc.returncode == 0, explain(proc)

    client = workspace.client()
    trials = runs_of(workspace, parent_run(workspace, "pbt").info.run_id)
    assert len(trials) == 2

    def history(run, key):
        return [m.value for m in sorted(client.get_metric_history(run.info.run_id, key),
                                        key=lambda m: (m.step, m.timestamp))]

    per_epoch = SMALL["data.num_samples"] // SMALL["train.batch_size"] // 2 * 2 * SMALL["train.batch_size"]
    exploited = []
    for run, other in ((trials[0], trials[1]), (trials[1], trials[0])):
        epochs, lrs, seen = history(run, "epoch"), history(run, "lr_g"), history(run, "images_seen")
        assert lrs[0] == pytest.approx(float(run.data.params["train.lr_g"]), rel=1e-12)
        assert epochs == sorted(epochs) and epochs[-1] == 2, epochs  # never restarted from 0
        assert all(s == pytest.approx(e * per_epoch) for e, s in zip(epochs, seen))
        if lrs[-1] != lrs[0]:
            donor_rate = history(other, "lr_g")[0]
            assert min(abs(lrs[-1] / donor_rate - f) for f in (0.8, 1.2)) < 1e-9, (lrs, donor_rate)
            exploited.append((run, other))
    assert len(exploited) == 1, "exactly the worse trial exploits the better one"
    # the state it went on from came from the donor's Train run: the checkpoint's lineage
    run, donor = exploited[0]
    own, theirs = (r.data.tags["gan.sweep_trial"].split("/")[1] for r in (run, donor))
    (trial_dir,) = (workspace.path / "ray" / "pbt").glob(f"run_trial_{own}_*")
    last = sorted(trial_dir.glob("checkpoint_*"))[-1]
    lineage = load_state(last)["lineage"]
    assert lineage[0].startswith(theirs) and lineage[-1].startswith(own), lineage


def test_interrupted_sweep_resumes_without_duplicate_trials(workspace):
    path = sweep_file(workspace, "resume", epochs=4, num_samples=2, max_concurrent_trials=1,
                      search_space={"train.lr_g": {"choice": [3e-4, 1e-3]}})
    log = open(workspace.path / "first.log", "w")  # a file: an unread pipe would fill and block
    proc = subprocess.Popen([sys.executable, str(REPO / "pipelines" / "tune.py"), "--config", path],
                            cwd=workspace.path, env=workspace.env, stdout=log,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    ckpts = workspace.path / "ray" / "resume"
    deadline = time.time() + 400
    while time.time() < deadline and not list(ckpts.glob("*/checkpoint_000001")):
        assert proc.poll() is None, (workspace.path / "first.log").read_text()[-3000:]
        time.sleep(1)
    assert list(ckpts.glob("*/checkpoint_000001")), "no trial reached its second checkpoint"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: Tune saves its state and stops
    proc.wait(timeout=120)
    out = (workspace.path / "first.log").read_text()
    assert proc.returncode == 130 and "--resume" in out, out[-3000:]
    assert parent_run(workspace, "resume").info.status == "KILLED"

    again = workspace.run("tune.py", "--config", path, "--resume", timeout=900)
    assert again.returncode == 0, explain(again)
    client = workspace.client()
    parent = parent_run(workspace, "resume")
    assert parent.info.status == "FINISHED"
    trials = runs_of(workspace, parent.info.run_id)
    assert len(trials) == 2 and all(t.info.status == "FINISHED" for t in trials)
    for t in trials:  # every trial ends at the last epoch; the resumed one did not restart
        epochs = [m.value for m in client.get_metric_history(t.info.run_id, "epoch")]
        assert max(epochs) == 4 and epochs == sorted(epochs), epochs
    assert client.get_model_version_by_alias("grid-mlp", "champion")


def test_a_trial_larger_than_the_cluster_fails_before_any_trial(workspace):
    path = sweep_file(workspace, "big", epochs=1, num_samples=2,
                      search_space={"train.lr_g": {"loguniform": [1e-4, 1e-3]}})
    spec = yaml.safe_load(open(path))
    spec["overrides"].update({"ray.num_workers": 8, "ray.cpus_per_worker": 1})
    open(path, "w").write(yaml.safe_dump(spec))
    proc = workspace.run("tune.py", "--config", path, timeout=300)
    assert proc.returncode == 2, explain(proc)
    assert "base.ray.num_workers" in proc.stderr and "8 CPU" in proc.stderr
    assert not (workspace.path / "ray" / "big").exists()
