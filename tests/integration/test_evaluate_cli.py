"""pipelines/evaluate.py as a user runs it: a registered generator judged by the project's own
evaluator, each figure beside its real-data floor, logged to the generator's MLflow run."""
from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch

from gan_core.config import load_config
from gan_core.evaluation import sample_labels
from gan_core.models import build_models
from pipelines.tracking import load_generator, log_generator, start_or_resume_run
from tests.conftest import MNIST_DIR, Workspace, explain

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"{MNIST_DIR} not present")]
MNIST = ["data.source=mnist", f"data.path={MNIST_DIR}", "data.image_size=28", "model.family=dcgan",
         "model.z_dim=8", "model.g_width=8", "model.d_width=8"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("evaluate"))
    proc = ws.run("train_evaluator.py", "--data", str(MNIST_DIR), "--epochs", "1", "--limit",
                  "2000", timeout=300)
    assert proc.returncode == 0, explain(proc)
    mlflow.set_tracking_uri(ws.uri)
    client = ws.client()
    for name, extra in (("cgan", ["model.num_classes=10"]), ("plain", []),
                        ("clusters", ["data.clusters=10", "model.num_classes=10"])):
        cfg = load_config(None, [*MNIST, *extra])
        torch.manual_seed(0)
        G, _ = build_models(cfg)  # untrained: far from the real digits
        if cfg.data.clusters:  # as if trained on clusters 3 and 7 alone, 3 three times as often
            G.count(torch.tensor([3, 3, 3, 7]))
        run_id, _ = start_or_resume_run(client, "gen", name, cfg.flat(), tags={})
        log_generator(run_id, G.state_dict(), cfg.to_dict(), name)
    return ws


def _table(stdout: str) -> dict:
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] != "metric":
            rows[parts[0]] = (float(parts[1]), float(parts[2]))
    return rows


def test_conditional_generator_gets_cond_acc_and_per_class_fid(store):
    proc = store.run("evaluate.py", "--model", "models:/cgan/1", "--metrics", "cond_acc,fid",
                     "--per-class", "--n", "1000", timeout=300)
    assert proc.returncode == 0, explain(proc)
    table = _table(proc.stdout)
    assert set(table) == {"cond_acc", "fid", "fid_class_mean", *(f"fid_class_{c}" for c in range(10))}
    acc, acc_real = table["cond_acc"]
    assert acc_real >= 0.85  # the evaluator reading real digits against their true labels
    assert acc < acc_real
    for key in ("fid", *(f"fid_class_{c}" for c in range(10))):
        fake, floor = table[key]
        assert floor < fake, key  # an untrained generator is far from the real floor
    metrics = store.client().get_run(mlflow.tracking.MlflowClient(store.uri)
                                     .get_model_version("cgan", "1").run_id).data.metrics
    assert metrics["eval/fid_class_3"] == pytest.approx(table["fid_class_3"][0], abs=1e-3)
    assert metrics["eval/cond_acc_real_floor"] == pytest.approx(acc_real, abs=1e-3)


def test_class_metrics_of_an_unconditional_generator_exit_2(store):
    for args in (["--metrics", "cond_acc"], ["--metrics", "fid", "--per-class"]):
        proc = store.run("evaluate.py", "--model", "models:/plain/1", "--n", "100", *args)
        assert proc.returncode == 2, explain(proc)
        assert "needs a conditional generator" in proc.stderr, explain(proc)
        assert "Traceback" not in proc.stderr


def test_truncated_figures_are_logged_apart_from_the_full_normal_ones(store):
    runs = {}
    for extra in ([], ["--truncation", "0.5"]):
        proc = store.run("evaluate.py", "--model", "models:/plain/1", "--metrics", "fid",
                         "--n", "300", *extra, timeout=300)
        assert proc.returncode == 0, explain(proc)
        runs[bool(extra)] = _table(proc.stdout)["fid"]
    assert "z truncated at 0.5" in proc.stdout
    (full, floor), (cut, cut_floor) = runs[False], runs[True]
    assert cut_floor == floor and cut != full  # other samples, the same reals
    run_id = mlflow.tracking.MlflowClient(store.uri).get_model_version("plain", "1").run_id
    metrics = store.client().get_run(run_id).data.metrics
    assert metrics["eval/fid"] == pytest.approx(full, abs=1e-3)
    assert metrics["eval/truncation_0.5/fid"] == pytest.approx(cut, abs=1e-3)
    bad = store.run("evaluate.py", "--model", "models:/plain/1", "--truncation", "-1")
    assert bad.returncode == 2 and "--truncation must be positive, got -1.0" in bad.stderr


def test_a_clustered_generator_registers_as_an_unconditional_one(store):
    model = store.pyfunc("models:/clusters/1")
    assert [tuple(t.shape) for t in model.metadata.get_input_schema().inputs] == [(-1, 9)]
    z = np.random.default_rng(0).standard_normal((4, 9)).astype(np.float32)
    assert model.predict(z).shape == (4, 1, 28, 28)
    fresh = build_models(load_config(None, [*MNIST, "data.clusters=10", "model.num_classes=10"]))[0]
    assert sample_labels(fresh, 4).tolist() == [0, 1, 2, 3]  # nothing counted: balanced
    loaded = load_generator("models:/clusters/1").G
    assert sample_labels(loaded, 4).tolist() == [3, 3, 3, 7]  # the shares travel with the weights
    refused = store.run("evaluate.py", "--model", "models:/clusters/1", "--metrics", "cond_acc",
                        "--n", "100")
    assert refused.returncode == 2, explain(refused)
    assert "labels are data.clusters=10 k-means clusters" in refused.stderr, explain(refused)
    proc = store.run("evaluate.py", "--model", "models:/clusters/1", "--metrics", "fid",
                     "--n", "200", timeout=300)
    assert proc.returncode == 0, explain(proc)
    fid, floor = _table(proc.stdout)["fid"]
    assert floor < fid


def test_draws_report_the_mean_and_sd_of_single_seeded_draws(store):
    single = []
    for seed in ("3", "4"):
        proc = store.run("evaluate.py", "--model", "models:/plain/1", "--metrics", "fid",
                         "--n", "300", "--seed", seed, timeout=300)
        assert proc.returncode == 0, explain(proc)
        single.append(_table(proc.stdout)["fid"])
    proc = store.run("evaluate.py", "--model", "models:/plain/1", "--metrics", "fid",
                     "--n", "300", "--seed", "3", "--draws", "2", timeout=300)
    assert proc.returncode == 0, explain(proc)
    assert "seeds 3..4 (mean and sd of 2 draws)" in proc.stdout
    row = next(line.split() for line in proc.stdout.splitlines() if line.startswith("fid "))
    fid, fid_sd, floor, floor_sd = map(float, row[1:])
    (g3, f3), (g4, f4) = single
    assert f3 != f4 and g3 != g4  # each draw has its own halves and samples
    assert fid == pytest.approx((g3 + g4) / 2, abs=2e-4)
    assert floor == pytest.approx((f3 + f4) / 2, abs=2e-4)
    assert fid_sd == pytest.approx(abs(g3 - g4) / 2 ** 0.5, abs=2e-4)
    assert floor_sd == pytest.approx(abs(f3 - f4) / 2 ** 0.5, abs=2e-4)
    run_id = mlflow.tracking.MlflowClient(store.uri).get_model_version("plain", "1").run_id
    metrics = store.client().get_run(run_id).data.metrics
    assert metrics["eval/draws"] == 2
    assert metrics["eval/fid_real_floor_sd"] == pytest.approx(floor_sd, abs=1e-3)
    bad = store.run("evaluate.py", "--model", "models:/plain/1", "--draws", "0")
    assert bad.returncode == 2 and "--draws must be at least 1, got 0" in bad.stderr
