"""bench/time_to_quality.py end to end on a short grid run: real Ray workers, a real MLflow
store, and its table checked against that store (it broke unnoticed once, when
bench/quality.py's Store changed)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO

pytestmark = pytest.mark.integration
BENCH = [sys.executable, str(REPO / "bench" / "time_to_quality.py"), "--suites", "grid"]


def _bench(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*BENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_grid_row_is_the_best_evaluation_the_run_logged(tmp_path):
    work = tmp_path / "work"
    proc = _bench("--set", "data.num_samples=40000", "--set", "train.epochs=1",
                  "--set", "eval.every_images=10000", "--workdir", str(work), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("grid ")]
    # "grid   25/25 modes, >= 90% HQ   not reached in 0.9 min   40,960   nan   nan   4  modes 13, high_quality 0.41"
    assert "not reached in" in row  # 40k points are a fiftieth of what the target takes
    head, values = row.split("  modes ")
    fields = head.split()
    evals, images = int(fields[-1]), int(fields[-4].replace(",", ""))
    modes, hq = [float(v.split()[-1]) for v in f"modes {values}".split(", ")]

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("bench").experiment_id])
    history = {k: {m.step: m.value for m in client.get_metric_history(run.info.run_id, k)}
               for k in ("eval_images_seen", "modes", "high_quality")}
    assert evals == len(history["eval_images_seen"]) >= 3
    best = max(history["high_quality"], key=history["high_quality"].get)
    assert hq == pytest.approx(history["high_quality"][best], abs=5e-4) and hq < 0.9
    assert modes == history["modes"][best] and images == history["eval_images_seen"][best]

    again = _bench("--workdir", str(work), cwd=tmp_path)  # would resume and mix the old run in
    assert again.returncode == 2 and "already holds an mlflow.db" in again.stderr


def test_bad_setting_is_refused_with_the_suites_config_before_any_run(tmp_path):
    proc = _bench("--set", "model.pack=0", "--workdir", str(tmp_path / "work"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "grid_mlp.yaml: config key 'model.pack': must be >= 1, got 0" in proc.stderr
    assert not (tmp_path / "work").exists()
