"""Several runs logging at once to one embedded SQLite store (what parallel runs and sweep
drivers on one machine do) lose nothing and never fail with "database is locked"."""
from __future__ import annotations

import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.integration

WRITERS, STEPS = 6, 100
WRITER = """
import sys
from mlflow.tracking import MlflowClient
from pipelines.tracking import log_metrics
uri, run_id, k = sys.argv[1], sys.argv[2], sys.argv[3]
client = MlflowClient(uri)
for step in range({steps}):
    log_metrics(client, run_id, {{"loss_" + k: float(step), "other_" + k: 1.0}}, step)
client.set_tag(run_id, "writer", k)
"""


def test_concurrent_writers_to_one_sqlite_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("writers")
    runs = [client.create_run(exp).info.run_id for _ in range(WRITERS)]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER.format(steps=STEPS), uri, run, str(k)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for k, run in enumerate(runs)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    for p, err in zip(procs, errors):
        assert p.returncode == 0, err[-2000:]
        assert "database is locked" not in err
    for k, run in enumerate(runs):
        history = client.get_metric_history(run, f"loss_{k}")
        assert sorted(h.step for h in history) == list(range(STEPS))
        assert client.get_run(run).data.tags["writer"] == str(k)
