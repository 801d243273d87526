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
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import Schema, TensorSpec

from gan_core.models.evaluator import DigitClassifier
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
    import torch

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
    a local path), in eval mode. Registry URIs resolve against `tracking_uri`, by default
    MLFLOW_TRACKING_URI or ./mlflow.db (pipelines.tracking.tracking_uri()). A URI that does not
    resolve, or names a model that is not an evaluator, raises ValueError naming both URIs."""
    uri = tracking_uri or default_tracking_uri()
    if "://" not in model_uri and ":/" not in model_uri and not os.path.exists(model_uri):
        raise ValueError(f"cannot load evaluator {model_uri!r} (tracking URI {uri}): not a model "
                         f"URI (models:/NAME@ALIAS, runs:/ID/evaluator) and no such directory")
    try:  # download first: the URI resolves against `uri` without touching MLflow's global state
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=_resolve(model_uri, uri),
                                                        dst_path=tmp, tracking_uri=uri)
            pyfunc = mlflow.pyfunc.load_model(local)  # reads the weights now; tmp may go
    except (MlflowException, OSError) as e:
        reason = " ".join(str(e).split())[:500] or type(e).__name__  # one line, no traceback
        raise ValueError(f"cannot load evaluator {model_uri!r} (tracking URI {uri}): {reason}") from None
    python_model = pyfunc.unwrap_python_model()
    module = getattr(python_model, "model", None)
    if not isinstance(module, DigitClassifier):
        raise ValueError(f"{model_uri!r} (tracking URI {uri}) is not an evaluator model: it holds "
                         f"{type(python_model).__name__}")
    return module.eval()



def _resolve(model_uri: str, uri: str) -> str:
    """A models:/ URI as the artifact location it names, looked up in the registry at `uri`.
    (MLflow resolves models:/ URIs against the global registry URI even when download_artifacts
    is given another one.)"""
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
    from mlflow.store.artifact.utils.models import get_model_name_and_version
    from mlflow.tracking import MlflowClient

    if not ModelsArtifactRepository.is_models_uri(model_uri):
        return model_uri
    base, sub_path = ModelsArtifactRepository.split_models_uri(model_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = get_model_name_and_version(client, base)
    if len(found) == 1:  # models:/m-<id>, a logged model
        location = client.get_logged_model(found[0]).artifact_location
    else:
        location = client.get_model_version_download_uri(*found)
    return location.rstrip("/") + "/" + sub_path if sub_path else location
