"""A real `mlflow server` goes away in the middle of a run and comes back: rank 0's logging never
blocks training, warns, retries, and catches up with every metric and figure in order."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from pipelines.ports import free_port
from pipelines.run_log import RankZeroLog

pytestmark = pytest.mark.integration


class Server:
    def __init__(self, tmp_path, port: int):
        self.args = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
                     "--port", str(port), "--backend-store-uri", f"sqlite:///{tmp_path / 'db.sqlite'}",
                     "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"]
        self.url, self.log, self.proc = f"http://127.0.0.1:{port}", tmp_path / "server.log", None

    def start(self) -> None:
        with open(self.log, "a") as out:  # a file, not a pipe nobody reads
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=out, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path, free_port())
    srv.start()
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


def test_logging_survives_a_server_outage(server, tmp_path, monkeypatch, recwarn):
    # each failed request gives up at once; RankZeroLog's own backoff does the waiting
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    client = MlflowClient(server.url)
    run_id = client.create_run(client.create_experiment("outage")).info.run_id
    log = RankZeroLog(server.url, run_id)
    log.metrics({"loss": 0.0}, 0)
    assert log.flush(60)

    server.stop()
    figure = tmp_path / "epoch_00001.png"
    figure.write_bytes(b"\x89PNG not really, but bytes all the same")
    start = time.monotonic()
    for step in range(1, 21):
        log.metrics({"loss": float(step)}, step)
    log.artifact(str(figure), "samples")
    figure.unlink()  # the caller's temporary file goes; the queued copy must not
    assert time.monotonic() - start < 1.0  # training did not wait for the server
    time.sleep(3)  # a few failed attempts
    assert not log.flush(0.1)

    server.start()
    assert log.flush(120), server.log.read_text()[-2000:]
    history = client.get_metric_history(run_id, "loss")
    assert [(h.step, h.value) for h in sorted(history, key=lambda h: h.step)] == \
        [(s, float(s)) for s in range(21)]
    assert [a.path for a in client.list_artifacts(run_id, "samples")] == ["samples/epoch_00001.png"]
    messages = [str(w.message) for w in recwarn]
    assert any("retried until they land" in m for m in messages), messages
    assert any("caught up" in m for m in messages), messages
