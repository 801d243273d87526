"""A real 2-worker Ray Train run: MLflow metrics, params, sample images, registry and champion."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FAST_GRID, explain

pytestmark = pytest.mark.integration


def test_grid_run_tracks_registers_and_generates(workspace):
    proc = workspace.train(*FAST_GRID, "--set", "train.epochs=3", "--set", "train.lr_decay=0.5",
                           "--name", "grid-it", "--experiment", "it")
    assert proc.returncode == 0, explain(proc)

    client = workspace.client()
    exp = client.get_experiment_by_name("it")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr_g"] == "0.001" and run.data.params["ray.num_workers"] == "2"
    m = run.data.metrics
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "images_per_s", "cpu_wait_share", "system_share", "modes",
                "high_quality", "kl"):
        assert key in m, key
    assert 0 < m["images_per_s"] and 0 <= m["high_quality"] <= 1 and 0 <= m["modes"] <= 25
    assert 0 <= m["cpu_wait_share"] < 1 and 0 <= m["system_share"] < 1
    # 4096 points / (2 workers x 128) = 16 steps per epoch, logged every 4 steps
    steps = [h.step for h in client.get_metric_history(run.info.run_id, "d_loss")]
    assert steps == [4 * i for i in range(1, 13)]
    # lr_decay 0.5 of 48 steps: constant for 24, then linear to 0; the step logged as s ran at
    # images_seen (s - 1) x 256
    lr = [h.value for h in client.get_metric_history(run.info.run_id, "lr_g")]
    assert lr == pytest.approx([1e-3 * min(1.0, (48 - (s - 1)) / 24) for s in steps])
    samples = [a.path for a in client.list_artifacts(run.info.run_id, "samples")]
    assert samples == [f"samples/epoch_{e:05d}.png" for e in (1, 2, 3)]

    version = client.get_model_version_by_alias("grid-mlp", "champion")
    assert version.run_id == run.info.run_id

    out = workspace.run("generate.py", "--model", "models:/grid-mlp@champion", "--n", "300",
                        "--out", "g.png", "--npy", "g.npy", "--seed", "3")
    assert out.returncode == 0, explain(out)
    points = np.load(workspace.path / "g.npy")
    assert points.shape == (300, 2) and np.isfinite(points).all()
    assert (workspace.path / "g.png").stat().st_size > 1000
    again = workspace.run("generate.py", "--model", "models:/grid-mlp@champion", "--n", "300",
                          "--out", "h.png", "--npy", "h.npy", "--seed", "3")
    assert again.returncode == 0 and np.array_equal(points, np.load(workspace.path / "h.npy"))


def test_resume_with_same_name_continues_the_same_run(workspace):
    first = workspace.train(*FAST_GRID, "--set", "train.epochs=1", "--name", "resume-me")
    assert first.returncode == 0, explain(first)
    second = workspace.train(*FAST_GRID, "--set", "train.epochs=2", "--name", "resume-me")
    assert second.returncode == 0, explain(second)
    assert "(resumed)" in second.stdout

    client = workspace.client()
    runs = client.search_runs([client.get_experiment_by_name("gan").experiment_id])
    assert len(runs) == 1  # the same MLflow run, not a second one
    epochs = [h.value for h in client.get_metric_history(runs[0].info.run_id, "epoch")]
    assert epochs == [1.0, 2.0]  # epoch 1 was not trained again
    steps = [h.step for h in client.get_metric_history(runs[0].info.run_id, "d_loss")]
    assert steps == [4 * i for i in range(1, 9)]  # step counter continued from the checkpoint


def test_divergence_stops_cleanly_and_keeps_the_last_good_checkpoint(workspace):
    good = workspace.train(*FAST_GRID, "--set", "train.epochs=1", "--name", "nan-run")
    assert good.returncode == 0, explain(good)
    # Resume with an absurd learning rate: the config's rates win on resume, and D blows up.
    bad = workspace.train(*FAST_GRID, "--set", "train.epochs=3", "--set", "train.lr_d=1e30",
                          "--set", "train.lr_g=1e30", "--name", "nan-run")
    assert bad.returncode == 1, explain(bad)
    assert "training diverged" in bad.stderr and "non-finite" in bad.stderr

    client, run = workspace.only_run()
    assert run.info.status == "FAILED" and "non-finite" in run.data.tags["failure"]
    ckpt = workspace.path / "ray" / "nan-run" / "epoch_00001" / "state.pt"
    assert ckpt.is_file() and not (workspace.path / "ray" / "nan-run" / "epoch_00002").exists()

    from gan_core.checkpoint import load_state

    state = load_state(ckpt.parent)
    assert state["epoch"] == 1
    assert all(np.isfinite(t.numpy()).all() for t in state["training"]["G"].values())
