"""A training worker killed mid-run (SIGKILL, as a pre-empted node would lose it): Ray Train
restarts the worker group from the last checkpoint (ray.max_failures), the run finishes, and the
MLflow run is the same one, with no logging step missing or logged twice, and its final weights
equal those of an uninterrupted run with the same seed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gan_core.checkpoint import load_state
from tests.conftest import FAST_GRID, REPO

pytestmark = pytest.mark.integration


def _train_workers() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ray::RayTrainWorker" in line]


def _registered(run_dir, name: str) -> bool:
    """Ray Train restores only checkpoints its controller has registered (a report still in a
    dead worker's queue is lost with it); the controller lists them in this snapshot."""
    snapshot = run_dir / "checkpoint_manager_snapshot.json"
    return snapshot.is_file() and f'"{name}"' in snapshot.read_text()


def test_killed_worker_restarts_from_checkpoint_into_the_same_run(workspace):
    storage = workspace.path / "ray"
    args = [sys.executable, str(REPO / "pipelines" / "train.py"), *FAST_GRID,
            "--set", "train.epochs=6", "--set", "ray.max_failures=1", "--name", "killed",
            "--set", f"ray.storage_path={storage}"]
    log = workspace.path / "train.log"
    with open(log, "w") as out:  # a file: Ray's output would fill an unread pipe
        proc = subprocess.Popen(args, cwd=workspace.path, env=workspace.env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 400
        while not _registered(storage / "killed", "epoch_00002"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.2)
        victims = _train_workers()
        assert len(victims) == 2, victims
        os.kill(victims[1], signal.SIGKILL)
        assert proc.wait(timeout=600) == 0, log.read_text()[-6000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (storage / "killed" / "epoch_00006").is_dir()
    # resumed from the registered checkpoint, not from scratch: epochs 1-2 were written once
    # (later epochs may be redone: a worker can run ahead of what the controller registered)
    created = [line for line in log.read_text().splitlines() if "Checkpoint successfully created" in line]
    for epoch in (1, 2):
        assert sum(f"killed/epoch_{epoch:05d})" in line for line in created) == 1, created

    client, run = workspace.only_run()
    assert run.info.status == "FINISHED"
    # 16 steps an epoch, logged every 4: each logging step exactly once, none missing
    steps = [h.step for h in client.get_metric_history(run.info.run_id, "d_loss")]
    assert sorted(steps) == [4 * i for i in range(1, 25)], steps
    epochs = sorted(h.value for h in client.get_metric_history(run.info.run_id, "epoch"))
    assert epochs == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]

    # the same seed without the kill ends on the same weights: the restart from epoch 2 replayed
    # exactly the rows, draws and updates of epochs 3-6 (the two newest checkpoints are kept)
    straight = workspace.train(*FAST_GRID, "--set", "train.epochs=6", "--name", "straight")
    assert straight.returncode == 0, straight.stderr[-4000:]
    for epoch in (5, 6):
        ours, theirs = (load_state(storage / name / f"epoch_{epoch:05d}")["training"]
                        for name in ("killed", "straight"))
        assert ours["step_index"] == theirs["step_index"] == 16 * epoch
        for net in ("G", "D", "G_ema"):
            for key, value in ours[net].items():
                assert torch.equal(value, theirs[net][key]), (epoch, net, key)


def test_killed_driver_resumes_with_the_same_command(workspace):
    """The driver and the local Ray it started are killed together (its whole process group,
    as when the job's machine goes away); re-running the same command resumes."""
    storage = workspace.path / "ray"
    args = [sys.executable, str(REPO / "pipelines" / "train.py"), *FAST_GRID,
            "--set", "train.epochs=5", "--name", "driver-killed", "--set", f"ray.storage_path={storage}"]
    log = workspace.path / "first.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(args, cwd=workspace.path, env=workspace.env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while not (storage / "driver-killed" / "epoch_00002").is_dir():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    deadline = time.monotonic() + 60  # what the process group started must be gone
    while _train_workers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not (storage / "driver-killed" / "epoch_00005").exists()

    again = workspace.train(*FAST_GRID, "--set", "train.epochs=5", "--name", "driver-killed")
    assert again.returncode == 0, again.stderr[-4000:]
    assert "(resumed)" in again.stdout
    client, run = workspace.only_run()
    assert run.info.status == "FINISHED"
    steps = [h.step for h in client.get_metric_history(run.info.run_id, "d_loss")]
    assert sorted(steps) == [4 * i for i in range(1, 21)], steps
