"""The registry with a real MLflow SQLite store: pickle-free generator models, and the champion
alias moving only to a better run."""
from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch

from gan_core.config import load_config
from gan_core.models import build_models
from pipelines.tracking import CHAMPION, log_generator, start_or_resume_run, update_champion

GRID = ["data.source=grid", "model.family=mlp", "model.g_width=16", "model.d_width=16"]


@pytest.fixture
def registry(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    return mlflow.tracking.MlflowClient(uri)


def _run_with_model(client, name: str, kl: float | None, seed: int = 0, metric_mode=("kl", "min")):
    cfg = load_config(None, GRID + [f"seed={seed}", "mlflow.registered_model=toy"])
    run_id, _ = start_or_resume_run(client, "reg", name, cfg.flat(), tags={})
    if kl is not None:
        client.log_metric(run_id, "kl", kl)
    torch.manual_seed(seed)
    G, _ = build_models(cfg)
    info = log_generator(run_id, G.state_dict(), cfg.to_dict(), "toy")
    moved, reason = update_champion(client, "toy", info.registered_model_version, *metric_mode)
    return info.registered_model_version, moved, reason, G


def test_champion_moves_only_to_a_better_run(registry):
    v1, moved, reason, _ = _run_with_model(registry, "a", kl=0.5)
    assert moved and "no champion" in reason
    v2, moved, reason, _ = _run_with_model(registry, "b", kl=0.8)
    assert not moved and "does not beat" in reason
    assert registry.get_model_version_by_alias("toy", CHAMPION).version == v1
    v3, moved, _, _ = _run_with_model(registry, "c", kl=0.1)
    assert moved and registry.get_model_version_by_alias("toy", CHAMPION).version == v3
    _, moved, reason, _ = _run_with_model(registry, "d", kl=None)
    assert not moved and "no finite 'kl'" in reason
    _, moved, _, _ = _run_with_model(registry, "e", kl=0.05, metric_mode=("kl", "max"))
    assert not moved  # 0.05 is worse than 0.1 when higher is better


def test_without_a_metric_the_newest_run_wins(registry):
    _run_with_model(registry, "a", kl=0.1, metric_mode=(None, "max"))
    v2, moved, reason, _ = _run_with_model(registry, "b", kl=0.9, metric_mode=(None, "max"))
    assert moved and "newest" in reason
    assert registry.get_model_version_by_alias("toy", CHAMPION).version == v2


def test_a_resumed_run_is_judged_against_its_earlier_version(registry):
    # Resuming re-registers from the same MLflow run: the champion's figure must be the one it
    # was registered with, not the run's latest value (which would make every comparison a tie).
    v1, _, _, _ = _run_with_model(registry, "a", kl=0.5)
    v2, moved, reason, _ = _run_with_model(registry, "a", kl=0.3)  # same run, trained further
    assert moved and "beats champion v1 (0.5)" in reason
    _, moved, reason, _ = _run_with_model(registry, "a", kl=0.4)  # and then worse
    assert not moved and "does not beat champion v2 (0.3)" in reason
    assert registry.get_model_version_by_alias("toy", CHAMPION).version == v2
    assert registry.get_model_version("toy", v1).tags["champion_metric.kl"] == "0.5"


def test_registered_model_reproduces_the_generator(registry):
    _, _, _, G = _run_with_model(registry, "a", kl=0.3, seed=7)
    model = mlflow.pyfunc.load_model("models:/toy@champion")
    z = np.random.default_rng(0).standard_normal((5, G.z_dim)).astype(np.float32)
    with torch.no_grad():
        expected = G.eval()(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(model.predict(z), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(Exception, match="does not match expected shape"):  # the signature
        model.predict(np.zeros((2, G.z_dim + 1), np.float32))


def test_a_champion_with_a_nan_metric_can_be_replaced(registry):
    _run_with_model(registry, "a", kl=float("nan"))
    v2, moved, _, _ = _run_with_model(registry, "b", kl=0.4)
    assert moved and registry.get_model_version_by_alias("toy", CHAMPION).version == v2


def _tamper(client, version: str, fn) -> None:
    """Edit the stored files of a registered version in place (a compromised artifact store)."""
    from pathlib import Path

    from pipelines.tracking import resolve_model_uri

    fn(Path(resolve_model_uri(f"models:/toy/{version}", client.tracking_uri)))


def test_loading_a_generator_never_runs_code_from_the_model(registry, tmp_path):
    from pipelines.tracking import load_generator

    version, _, _, G = _run_with_model(registry, "a", kl=0.3, seed=3)
    marker = tmp_path / "code-ran"
    _tamper(registry, version, lambda d: (d / "gan_model.py").write_text(
        (d / "gan_model.py").read_text() + f"\nopen({str(marker)!r}, 'w').write('pwned')\n"))
    loaded = load_generator(f"models:/toy/{version}")
    assert not marker.exists()  # the model's code file was never executed
    z = torch.randn(4, G.z_dim)
    with torch.no_grad():
        assert torch.equal(loaded.G(z), G.eval()(z))
    assert loaded.run_id == registry.get_model_version("toy", version).run_id
    mlflow.pyfunc.load_model(f"models:/toy/{version}")  # the threat is real: MLflow's loader
    assert marker.read_text() == "pwned"  # runs the model's code


class _Payload:
    """Unpickling this would construct a foreign object; weights_only loading must refuse."""


def test_a_generator_whose_weights_hold_pickled_objects_is_refused(registry):
    from pipelines.tracking import load_generator

    version, _, _, G = _run_with_model(registry, "a", kl=0.3)
    state = {**G.state_dict(), "extra": _Payload()}
    _tamper(registry, version, lambda d: torch.save(state, d / "artifacts" / "generator.pt"))
    with pytest.raises(ValueError, match="is refused: its weights file is not plain weights"):
        load_generator(f"models:/toy/{version}")
