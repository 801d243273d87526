"""End to end as a user runs it: `ray start --head`, `ray job submit` of train.py with token
auth, then generate.py pulls the champion from the MLflow registry."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.ports import free_port
from tests.conftest import FAST_GRID, REPO, Workspace, explain

pytestmark = pytest.mark.e2e
RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("cluster"))
    subprocess.run([RAY, "get-auth-token", "--generate"], env=ws.env, check=True,
                   capture_output=True)
    dash = free_port()
    start = subprocess.run(
        [RAY, "start", "--head", f"--port={free_port()}", "--num-cpus=2", "--disable-usage-stats",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}"],
        cwd=ws.path, env=ws.env, capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, explain(start)
    try:
        yield ws, f"http://127.0.0.1:{dash}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=ws.env, capture_output=True, timeout=120)


def test_job_submit_then_generate_from_registry(cluster):
    ws, address = cluster
    runtime_env = {"env_vars": {"MLFLOW_TRACKING_URI": ws.uri}}
    job = subprocess.run(
        [RAY, "job", "submit", "--address", address, "--runtime-env-json", json.dumps(runtime_env),
         "--", sys.executable, str(REPO / "pipelines" / "train.py"), *FAST_GRID,
         "--set", "train.epochs=2", "--set", f"ray.storage_path={ws.path / 'ray'}",
         "--name", "e2e-grid", "--experiment", "e2e"],
        cwd=ws.path, env=ws.env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, explain(job)
    assert "succeeded" in job.stdout + job.stderr

    client = ws.client()
    (run,) = client.search_runs([client.get_experiment_by_name("e2e").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["gan.run_name"] == "e2e-grid"
    assert client.get_model_version_by_alias("grid-mlp", "champion").run_id == run.info.run_id

    gen = ws.run("generate.py", "--model", "models:/grid-mlp@champion", "--n", "2500",
                 "--out", "grid.png", "--npy", "samples.npy", "--seed", "1")
    assert gen.returncode == 0, explain(gen)
    samples = np.load(ws.path / "samples.npy")
    assert samples.shape == (2500, 2) and np.isfinite(samples).all()
    # the toy metrics generate.py prints come from the registered model's own samples
    assert "modes=" in gen.stdout and "kl=" in gen.stdout


def test_job_submit_reports_bad_config_without_starting_training(cluster):
    ws, address = cluster
    job = subprocess.run(
        [RAY, "job", "submit", "--address", address, "--", sys.executable,
         str(REPO / "pipelines" / "train.py"), "--set", "loss.name=wasserstein"],
        cwd=ws.path, env=ws.env, capture_output=True, text=True, timeout=300)
    assert job.returncode != 0
    out = job.stdout + job.stderr
    assert "config key 'loss.name'" in out and "wasserstein" in out and "failed" in out
    assert "TrainController" not in out


def test_sweep_under_job_submit_registers_its_best_trial(cluster):
    ws, address = cluster
    sweep = ws.path / "e2e-sweep.yaml"
    sweep.write_text(json.dumps({  # JSON is YAML
        "name": "e2e-sweep", "base": str(REPO / "tune_configs" / "grid_mlp.yaml"),
        "overrides": {"data.num_samples": 32768, "train.batch_size": 128, "train.epochs": 2,
                      "ray.cpus_per_worker": 0.25, "ray.storage_path": str(ws.path / "ray"),
                      "mlflow.experiment": "e2e-sweep", "mlflow.registered_model": "e2e-sweep-grid"},
        "metric": "kl", "mode": "min", "num_samples": 2,
        "search_space": {"train.lr_g": {"choice": [3e-4, 1e-3]}}}))
    job = subprocess.run(
        [RAY, "job", "submit", "--address", address, "--runtime-env-json",
         json.dumps({"env_vars": {"MLFLOW_TRACKING_URI": ws.uri}}), "--", sys.executable,
         str(REPO / "pipelines" / "tune.py"), "--config", str(sweep)],
        cwd=ws.path, env=ws.env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, explain(job)
    client = ws.client()
    runs = client.search_runs([client.get_experiment_by_name("e2e-sweep").experiment_id])
    parent = [r for r in runs if r.data.tags.get("gan.sweep") == "parent"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parent) == 1 and len(trials) == 2
    champion = client.get_model_version_by_alias("e2e-sweep-grid", "champion")
    assert champion.run_id in {t.info.run_id for t in trials}
