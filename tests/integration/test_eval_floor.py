"""The real-vs-real floor a training run logs beside its periodic evaluation
(pipelines/run.py's evaluation_inputs), with a real MLflow-logged evaluator: the metrics of
eval.num_samples other real images against the reference, none where the data is too small,
and counts too small for a metric refused before training, naming eval.metrics."""
from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from gan_core.config import ConfigError, load_config
from gan_core.data import load_source
from gan_core.data.transforms import preprocess_images
from gan_core.evaluation import quality_metrics
from gan_core.models.evaluator import DigitClassifier
from pipelines.evaluators import load_evaluator, log_evaluator
from pipelines.run import evaluation_inputs

pytestmark = pytest.mark.integration
EVAL = ["eval.metrics=fid,is", "eval.evaluator=models:/ev/1"]


@pytest.fixture
def evaluator(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("ev")).info.run_id
    torch.manual_seed(0)
    log_evaluator(run_id, DigitClassifier().eval(), "ev", {})  # untrained weights: any net will do
    return load_evaluator("models:/ev/1")


def test_floor_scores_other_real_images_against_the_reference(evaluator):
    cfg = load_config(None, [*EVAL, "eval.num_real=300", "eval.num_samples=200"])
    data = load_source(cfg.data, seed=cfg.seed)
    out = evaluation_inputs(cfg, data)
    order = np.random.default_rng(cfg.seed).permutation(len(data.x))
    ref, other = (preprocess_images(data.x[i], cfg.data.image_size, cfg.data.channels)
                  for i in (order[:300], order[300:500]))
    assert np.array_equal(out["real_reference"], ref)
    expected = quality_metrics(cfg.data.source, other, ["fid", "is"], ref, evaluator)
    assert out["eval_floor"].keys() == expected.keys() == {"fid", "is", "is_std", "is_class_entropy",
                                                           "is_sample_entropy"}
    assert out["eval_floor"] == pytest.approx(expected, rel=1e-5)
    assert out["eval_floor"]["fid"] > 0


def test_no_floor_without_enough_real_images(evaluator, capsys):
    cfg = load_config(None, [*EVAL, "eval.num_real=1700", "eval.num_samples=200"])  # 1,797 digits
    out = evaluation_inputs(cfg, load_source(cfg.data, seed=cfg.seed))
    assert "eval_floor" not in out and len(out["real_reference"]) == 1700
    assert "no evaluation floor: it needs eval.num_real + eval.num_samples = 1,900" in capsys.readouterr().out


def test_counts_too_small_for_a_metric_are_refused_naming_eval_metrics(evaluator):
    cfg = load_config(None, [*EVAL, "eval.num_real=300", "eval.num_samples=1"])
    with pytest.raises(ConfigError) as e:
        evaluation_inputs(cfg, load_source(cfg.data, seed=cfg.seed))
    assert e.value.key == "eval.metrics" and "FID needs at least" in str(e.value)
    assert "eval.num_samples 1" in str(e.value)
