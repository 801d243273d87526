"""pipelines/train_evaluator.py as a user runs it: real MNIST files, a real MLflow SQLite store,
the registered evaluator loaded back as an nn.Module and as a pyfunc model; bad input exits 2."""
from __future__ import annotations

import shutil

import mlflow
import numpy as np
import pytest
import torch

from gan_core.config import DataConfig
from gan_core.data import load_source
from gan_core.evaluator_training import accuracy
from gan_core.models.evaluator import DigitClassifier
from pipelines.evaluators import load_evaluator
from tests.conftest import MNIST_DIR, explain

needs_mnist = pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"{MNIST_DIR} not present")
NAME = "mnist-evaluator"


@needs_mnist
def test_cli_trains_registers_and_loads_back(workspace, monkeypatch):
    proc = workspace.run("train_evaluator.py", "--data", str(MNIST_DIR), "--epochs", "1",
                         "--limit", "2000", timeout=300)
    assert proc.returncode == 0, explain(proc)
    assert "held-out accuracy" in proc.stdout and f"models:/{NAME}" in proc.stdout, explain(proc)

    client = workspace.client()
    champion = client.get_model_version_by_alias(NAME, "champion")
    run = client.get_run(champion.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["val_accuracy"] >= 0.85, run.data.metrics
    assert run.data.metrics["num_train"] + run.data.metrics["num_val"] == 2000
    assert run.data.params["epochs"] == "1" and run.data.params["limit"] == "2000"

    model = load_evaluator(f"models:/{NAME}@champion", tracking_uri=workspace.uri)
    assert isinstance(model, DigitClassifier) and not model.training
    data = load_source(DataConfig(source="mnist", path=str(MNIST_DIR)))
    x, y = data.x[5000:5500], data.y[5000:5500]  # never seen: the run used the first 2000
    assert accuracy(model, x, y) >= 0.85

    # The pyfunc model gives the same logits for the same images in [-1, 1], any size.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", workspace.uri)
    pyfunc = workspace.pyfunc(f"models:/{NAME}@champion")
    images = x * 2 - 1
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
    logits = pyfunc.predict(images)
    assert logits.shape == (500, 10) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    small = torch.nn.functional.avg_pool2d(torch.from_numpy(images[:4]), 2).numpy()  # 14x14
    assert pyfunc.predict(small).shape == (4, 10)


def test_missing_model_uri_is_a_clear_value_error(tmp_path):
    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(ValueError) as e:
        load_evaluator(f"models:/{NAME}@champion", tracking_uri=uri)
    msg = str(e.value)
    assert f"models:/{NAME}@champion" in msg and uri in msg and "\n" not in msg


def test_missing_data_dir_exits_2(workspace):
    missing = workspace.path / "no-such-dir"
    proc = workspace.run("train_evaluator.py", "--data", str(missing), timeout=120)
    assert proc.returncode == 2, explain(proc)
    assert str(missing) in proc.stderr and "Traceback" not in proc.stderr, explain(proc)


@needs_mnist
def test_images_without_labels_or_truncated_exit_2(workspace):
    unlabelled = workspace.path / "unlabelled"
    unlabelled.mkdir()
    shutil.copy(MNIST_DIR / "t10k-images-idx3-ubyte.gz", unlabelled)
    proc = workspace.run("train_evaluator.py", "--data", str(unlabelled), timeout=120)
    assert proc.returncode == 2, explain(proc)
    assert "labels" in proc.stderr and str(unlabelled) in proc.stderr, explain(proc)

    broken = workspace.path / "broken"
    broken.mkdir()
    raw = (MNIST_DIR / "t10k-images-idx3-ubyte.gz").read_bytes()
    (broken / "t10k-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 2])
    shutil.copy(MNIST_DIR / "t10k-labels-idx1-ubyte.gz", broken)
    proc = workspace.run("train_evaluator.py", "--data", str(broken), timeout=120)
    assert proc.returncode == 2, explain(proc)
    assert str(broken / "t10k-images-idx3-ubyte.gz") in proc.stderr, explain(proc)
    assert "Traceback" not in proc.stderr, explain(proc)


def test_a_generator_model_is_not_an_evaluator(tmp_path, monkeypatch):
    from gan_core.config import load_config
    from gan_core.models import build_models
    from pipelines.tracking import log_generator, start_or_resume_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.tracking.MlflowClient(uri)
    cfg = load_config(None, ["data.source=grid", "model.family=mlp", "model.g_width=8",
                             "model.d_width=8"])
    run_id, _ = start_or_resume_run(client, "gen", "g", cfg.flat(), tags={})
    G, _ = build_models(cfg)
    log_generator(run_id, G.state_dict(), cfg.to_dict(), "toy")
    with pytest.raises(ValueError, match="not an evaluator model"):
        load_evaluator("models:/toy/1", tracking_uri=uri)
