"""Rank 0's metrics reach a real SQLite MLflow store in few writes, stamped when they were
measured, and `flush` writes them at once instead of waiting for the next write slot."""
from __future__ import annotations

import time

import pytest
from mlflow.tracking import MlflowClient

from pipelines import run_log
from pipelines.run_log import RankZeroLog

pytestmark = pytest.mark.integration


def _counted_log(tmp_path, experiment: str):
    """(store client, run id, a RankZeroLog on a new SQLite run, the sizes of its writes): the
    log's own client counts its rows on the way to the real store."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment(experiment)).info.run_id
    log = RankZeroLog(uri, run_id)
    writes: list[int] = []
    real = log.client.log_batch
    log.client.log_batch = lambda run, metrics, **k: (writes.append(len(metrics)),
                                                       real(run, metrics, **k))
    return client, run_id, log, writes


def test_metrics_are_written_together_and_stamped_when_measured(tmp_path):
    client, run_id, log, writes = _counted_log(tmp_path, "coalesce")
    stamps = []
    for step in range(40):
        stamps.append(int(time.time() * 1000))
        log.metrics({"loss": float(step), "d_real": 0.5}, step)
        time.sleep(0.02)  # 0.8 s of "training": inside one write slot
    start = time.monotonic()
    assert log.flush(30)
    assert time.monotonic() - start < run_log.METRICS_EVERY_S / 2  # flush did not wait for the slot

    # the first rows go at once (no earlier write), the rest together at the flush
    assert len(writes) == 2 and sum(writes) == 80, writes
    history = sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in history] == [(s, float(s)) for s in range(40)]
    # stamped at the call, 20 ms apart, not all at the moment of the one write
    assert all(abs(m.timestamp - t) <= 15 for m, t in zip(history, stamps))
    assert history[-1].timestamp - history[1].timestamp >= 38 * 20


def test_a_backlog_is_split_into_writes_mlflow_accepts(tmp_path, monkeypatch):
    monkeypatch.setattr(run_log, "MAX_METRICS_PER_WRITE", 25)
    client, run_id, log, writes = _counted_log(tmp_path, "backlog")
    for step in range(30):
        log.metrics({"loss": float(step), "g_loss": 1.0}, step)
    assert log.flush(30)
    assert sum(writes) == 60 and max(writes) <= 25
    assert len(client.get_metric_history(run_id, "g_loss")) == 30


def test_write_now_lands_everything_queued_before_it_without_blocking(tmp_path):
    """Before a checkpoint: a run restarted from it replays only the steps after the last one
    logged, so the metrics, a figure and the metrics queued behind that figure must all land."""
    client, run_id, log, writes = _counted_log(tmp_path, "write-now")
    log.metrics({"loss": 0.0}, 0)  # the first write goes at once and opens a 5 s slot
    figure = tmp_path / "epoch_00001.png"
    figure.write_bytes(b"\x89PNG bytes")
    log.metrics({"loss": 1.0}, 1)
    log.artifact(str(figure), "samples")
    log.metrics({"epoch": 1.0}, 1)
    start = time.monotonic()
    log.write_now()
    assert time.monotonic() - start < 0.1  # training does not wait for it
    while log._queue.unfinished_tasks and time.monotonic() - start < run_log.METRICS_EVERY_S:
        time.sleep(0.02)
    assert time.monotonic() - start < run_log.METRICS_EVERY_S / 2, "waited for the slot"
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [0, 1]
    assert [m.value for m in client.get_metric_history(run_id, "epoch")] == [1.0]
    assert [a.path for a in client.list_artifacts(run_id, "samples")] == ["samples/epoch_00001.png"]
