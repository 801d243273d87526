"""MLflow helpers for the evaluator network (the digit classifier behind the image metrics): log it
as a pickle-free pyfunc model, and load it back from any model URI as a plain nn.Module."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types.schema import Schema, TensorSpec

from gan_core.models.evaluator import DigitClassifier
from pipelines.tracking import load_logged_module
from pipelines.tracking import tracking_uri as default_tracking_uri

EVALUATOR_CODE = str(Path(__file__).with_name("evaluator_model.py"))
ARTIFACT_NAME = "evaluator"
# Any image size: the model resizes to 28x28 itself (16x16 generator output, 32x32 padded MNIST).
SIGNATURE = ModelSignature(
    inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1, -1, -1))]),
    outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, DigitClassifier.num_classes))]),
)


def _json_number(v):
    return v.item() if isinstance(v, np.generic) else v


def log_evaluator(run_id: str, model: DigitClassifier, registered_name: Optional[str],
                  metrics: dict):
    """Log `model` to run `run_id` as a pyfunc model (weights via torch.save(state_dict) plus a
    JSON of its constructor arguments and training metrics; loaded by evaluator_model.py with
    weights_only=True) and register a new version under `registered_name` (None: no registry).
    Returns MLflow's ModelInfo. Logs into the active tracking URI."""
    config = {"init": {"dropout": float(model.dropout)}, "input_size": model.input_size,
              "num_classes": model.num_classes, "num_features": model.num_features,
              "metrics": {k: _json_number(v) for k, v in metrics.items()}}
    example = np.random.default_rng(0).uniform(-1, 1, (2, 1, model.input_size, model.input_size))
    with tempfile.TemporaryDirectory() as tmp:
        weights, config_file = Path(tmp, "evaluator.pt"), Path(tmp, "evaluator.json")
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights)
        config_file.write_text(json.dumps(config, indent=1))
        with mlflow.start_run(run_id=run_id):
            return mlflow.pyfunc.log_model(
                name=ARTIFACT_NAME, python_model=EVALUATOR_CODE,
                artifacts={"weights": str(weights), "config": str(config_file)},
                signature=SIGNATURE, input_example=example.astype(np.float32),
                registered_model_name=registered_name, metadata={"metrics": config["metrics"]})


def load_evaluator(model_uri: str, tracking_uri: Optional[str] = None) -> DigitClassifier:
    """The DigitClassifier behind an MLflow model URI (models:/NAME@champion, runs:/ID/evaluator,
    a local path), in eval mode, rebuilt from its weights without running the model's code.
    Registry URIs resolve against `tracking_uri`, by default MLFLOW_TRACKING_URI or ./mlflow.db
    (pipelines.tracking.tracking_uri()). A URI that does not resolve, or names a model that is
    not an evaluator, raises ValueError naming both URIs."""
    uri = tracking_uri or default_tracking_uri()
    if "://" not in model_uri and ":/" not in model_uri and not os.path.exists(model_uri):
        raise ValueError(f"cannot load evaluator {model_uri!r} (tracking URI {uri}): not a model "
                         f"URI (models:/NAME@ALIAS, runs:/ID/evaluator) and no such directory")
    module, _, _ = load_logged_module(model_uri, uri, "evaluator.pt", "an evaluator model",
                                      lambda c: DigitClassifier(**c.get("init", {})))
    return module
