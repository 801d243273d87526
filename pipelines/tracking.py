"""MLflow helpers: the tracking URI convention, run start/resume, model logging and the champion.

Only the driver and rank 0 call these (SQLite tolerates one writer)."""
from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
import tempfile
import time
from pathlib import Path
from typing import Optional

import mlflow
import numpy as np
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

DEFAULT_URI = "sqlite:///mlflow.db"
RUN_NAME_TAG = "gan.run_name"
CHAMPION = "champion"
MODEL_CODE = str(Path(__file__).with_name("gan_model.py"))


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else an SQLite file in the working directory; relative SQLite
    paths become absolute so Ray workers (other working directories) write to the same file."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def start_or_resume_run(client: MlflowClient, experiment: str, run_name: str, params: dict,
                        tags: dict, new: bool = False) -> tuple[str, bool]:
    """The MLflow run for a Ray run name: the existing one when resuming, else (or when `new`)
    a new one."""
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    found = [] if new else client.search_runs(
        [exp_id], filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        return run_id, True
    run = client.create_run(exp_id, run_name=run_name, tags={RUN_NAME_TAG: run_name, **tags})
    for key, value in params.items():
        client.log_param(run.info.run_id, key, "null" if value is None else value)
    return run.info.run_id, False


def log_skipped(client: MlflowClient, run_id: str, skipped: list[str]) -> None:
    """The samples data.on_bad_sample=skip left out: a count, and where and why in data/skipped.txt."""
    if skipped:
        client.log_metric(run_id, "data_skipped", len(skipped))
        client.log_text(run_id, "\n".join(skipped) + "\n", "data/skipped.txt")


def metric_rows(metrics: dict, step: int) -> list[Metric]:
    """MLflow's rows for one step's values, stamped now."""
    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, step) for k, v in metrics.items()]


def log_metrics(client: MlflowClient, run_id: str, metrics: dict, step: int) -> None:
    client.log_batch(run_id, metrics=metric_rows(metrics, step), synchronous=True)


def log_generator(run_id: str, g_state: dict, cfg_dict: dict, registered_name: str):
    """Log G (weights + config, loaded pickle-free by gan_model.py) and register a new version."""
    import torch

    clusters = cfg_dict["data"].get("clusters", 0)  # takes z and one more entry, no label
    z_dim = cfg_dict["model"]["z_dim"] + (1 if clusters else 0)
    with tempfile.TemporaryDirectory() as tmp:
        weights, config = Path(tmp, "generator.pt"), Path(tmp, "config.json")
        torch.save(g_state, weights)
        config.write_text(json.dumps(cfg_dict))
        example = np.random.default_rng(0).standard_normal((2, z_dim)).astype(np.float32)
        if cfg_dict["model"]["num_classes"] and not clusters:  # the schema names z and the label
            example = {"z": example, "label": np.arange(2, dtype=np.int64)}
        elif cfg_dict["model"]["text_max_len"]:  # ... or z and the caption
            example = {"z": example, "text": np.array([c[:cfg_dict["model"]["text_max_len"]]
                                                       for c in ("seven", "two")])}
        signature = None
        if cfg_dict["model"]["family"] == "srgan":  # a low-res image batch of any size
            example, signature = sr_signature(cfg_dict)
        with mlflow.start_run(run_id=run_id):
            return mlflow.pyfunc.log_model(
                name="generator", python_model=MODEL_CODE, input_example=example,
                signature=signature, artifacts={"weights": str(weights), "config": str(config)},
                registered_model_name=registered_name)


def sr_signature(cfg_dict: dict):
    """An SR generator's input example (one low-res crop) and a signature that takes
    (n, C, h, w) float32 of any h, w and returns (n, C, h*scale, w*scale)."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    c, side = cfg_dict["data"]["channels"], cfg_dict["data"]["image_size"] // cfg_dict["model"]["sr_scale"]
    example = np.random.default_rng(0).uniform(-1, 1, (1, c, side, side)).astype(np.float32)
    spec = Schema([TensorSpec(np.dtype(np.float32), (-1, c, -1, -1))])
    return example, ModelSignature(inputs=spec, outputs=spec)


@dataclass
class LoadedGenerator:
    G: object  # the torch generator, in eval mode
    cfg: object  # the run's gan_core Config
    run_id: str


def model_files(model_uri: str, tracking_uri: str, dst: str) -> tuple[dict[str, Path], str]:
    """Download an MLflow pyfunc model into `dst` and return its artifact files by name and the
    run that logged it. Nothing in the model is executed: its MLmodel file is YAML, and the
    callers load the weights with weights_only=True into modules built from this project's code
    (a tampered model cannot run code here). OSError / MlflowException on a bad URI."""
    from mlflow.models import Model

    local = mlflow.artifacts.download_artifacts(artifact_uri=resolve_model_uri(model_uri, tracking_uri),
                                                dst_path=dst, tracking_uri=tracking_uri)
    meta = Model.load(local)
    listed = meta.flavors.get("python_function", {}).get("artifacts", {})
    return {name: Path(local, a["path"]) for name, a in listed.items()}, meta.run_id


def resolve_model_uri(model_uri: str, tracking_uri: str) -> str:
    """A models:/ URI as the artifact location it names, looked up in the registry at
    `tracking_uri` (MLflow resolves models:/ URIs against the global registry URI even when
    download_artifacts is given another one); other URIs as they are."""
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    if not ModelsArtifactRepository.is_models_uri(model_uri):
        return model_uri
    base, sub_path = ModelsArtifactRepository.split_models_uri(model_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = get_model_name_and_version(client, base)
    if len(found) == 1:  # models:/m-<id>, a logged model
        location = client.get_logged_model(found[0]).artifact_location
    else:
        location = client.get_model_version_download_uri(*found)
    return location.rstrip("/") + "/" + sub_path if sub_path else location


def load_logged_module(model_uri: str, tracking_uri: str, weights_name: str, what: str, build):
    """The torch module behind a model this project logged (weights file `weights_name` plus a
    JSON config): `build(config)` makes it from this project's code and its weights load with
    weights_only=True, so nothing stored in the model runs. Returns (module in eval mode, config,
    run id). ValueError naming the URIs when the model cannot be fetched, is not a `what`, or its
    weights are not plain weights of the built module (pickled objects, other shapes)."""
    import torch

    try:
        with tempfile.TemporaryDirectory() as tmp:
            files, run_id = model_files(model_uri, tracking_uri, tmp)
            if Path(files.get("weights", "")).name != weights_name or "config" not in files:
                raise ValueError(f"{model_uri!r} (tracking URI {tracking_uri}) is not {what} "
                                 "logged by this pipeline")
            config = json.loads(files["config"].read_text())
            module = build(config)
            module.load_state_dict(torch.load(files["weights"], map_location="cpu", weights_only=True))
    except (MlflowException, OSError) as e:
        reason = " ".join(str(e).split())[:500] or type(e).__name__  # one line, no traceback
        raise ValueError(f"cannot load {what} {model_uri!r} (tracking URI {tracking_uri}): "
                         f"{reason}") from None
    except (pickle.UnpicklingError, RuntimeError) as e:  # pickled objects; weights that do not fit
        raise ValueError(f"{what} {model_uri!r} is refused: its weights file is not plain weights "
                         f"of its config's network: {' '.join(str(e).split())[:300]}") from None
    return module.eval(), config, run_id


def load_generator(uri: str) -> LoadedGenerator:
    """A generator logged by `log_generator`, rebuilt without running the model's code."""
    from gan_core.config import from_dict
    from gan_core.models import build_models

    G, config, run_id = load_logged_module(uri, tracking_uri(), "generator.pt", "a generator",
                                           lambda c: build_models(from_dict(c, check_paths=False))[0])
    return LoadedGenerator(G, from_dict(config, check_paths=False), run_id)


def _metric_tag(metric: str) -> str:
    return f"champion_metric.{metric}"


def _metric_of_version(client: MlflowClient, version, metric: str) -> Optional[float]:
    """`metric` as it stood when `version` was registered (its tag). A resumed run registers
    again from the same MLflow run, whose latest value belongs to the new version, not the old.
    Versions registered before the tag existed fall back to their run's latest value."""
    tagged = (version.tags or {}).get(_metric_tag(metric))
    if tagged is not None:
        return float(tagged)
    return client.get_run(version.run_id).data.metrics.get(metric)


def update_champion(client: MlflowClient, name: str, version: str, metric: Optional[str],
                    mode: str) -> tuple[bool, str]:
    """Point alias `champion` at `version` if it beats the current champion on `metric`
    (no metric: the newest version wins). Returns (moved, reason)."""
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    new = client.get_model_version(name, version)
    if metric is not None:
        mine = _metric_of_version(client, new, metric)
        if mine is not None:
            client.set_model_version_tag(name, version, _metric_tag(metric), repr(float(mine)))
    if current is None:
        reason = "no champion yet"
    elif metric is None:
        reason = "no quality metric configured: the newest run wins"
    else:
        theirs = _metric_of_version(client, current, metric)
        if mine is None or not np.isfinite(mine):
            return False, f"this run has no finite '{metric}'; champion stays v{current.version}"
        better = theirs is None or not np.isfinite(theirs) or \
            (mine > theirs if mode == "max" else mine < theirs)
        if not better:
            return False, f"{metric}={mine:.4g} does not beat champion v{current.version} ({theirs:.4g})"
        reason = f"{metric}={mine:.4g} beats champion v{current.version} ({theirs})"
    client.set_registered_model_alias(name, CHAMPION, version)
    return True, reason
