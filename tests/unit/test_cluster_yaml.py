"""Checks for the Ray cluster-launcher config at the repository root.

The config is validated against the JSON schema that ships with the installed
ray (the same one `ray up` uses), then against project rules: CPU-only head
that runs MLflow, GPU workers, nothing bound to public addresses, token auth
on, and no secrets in the file.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")
ray = pytest.importorskip("ray")

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO_ROOT / "cluster.yaml"
RAY_SCHEMA = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"

SECRET_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"aws_secret_access_key", re.IGNORECASE),
    re.compile(r"BEGIN .*PRIVATE KEY"),
    # The Ray token must come from a mounted file, never inline.
    re.compile(r"RAY_AUTH_TOKEN\s*[=:]\s*\S"),
]


@pytest.fixture(scope="module")
def raw_text() -> str:
    return CLUSTER_YAML.read_text()


@pytest.fixture(scope="module")
def config(raw_text: str) -> dict:
    cfg = yaml.safe_load(raw_text)
    assert isinstance(cfg, dict), "cluster.yaml must be a mapping"
    return cfg


@pytest.fixture(scope="module")
def schema() -> dict:
    assert RAY_SCHEMA.is_file(), f"ray schema not found at {RAY_SCHEMA}"
    return json.loads(RAY_SCHEMA.read_text())


def _all_commands(cfg: dict) -> list[str]:
    keys = (
        "initialization_commands",
        "setup_commands",
        "head_setup_commands",
        "worker_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    )
    cmds = [c for k in keys for c in cfg.get(k) or []]
    for node_type in cfg["available_node_types"].values():
        for k in ("initialization_commands", "worker_setup_commands"):
            cmds.extend(node_type.get(k) or [])
    return cmds


def _head(cfg: dict) -> dict:
    return cfg["available_node_types"][cfg["head_node_type"]]


# --- schema -----------------------------------------------------------------


def test_valid_against_ray_schema(config: dict, schema: dict) -> None:
    jsonschema.validate(config, schema)


def test_broken_copy_fails_schema(config: dict, schema: dict) -> None:
    broken = copy.deepcopy(config)
    broken["max_workers"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)

    broken = copy.deepcopy(config)
    broken["not_a_ray_field"] = True  # schema forbids unknown top-level keys
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_ray_validate_config(config: dict) -> None:
    """Ray's own fill-defaults + validate path (no cloud calls, no credentials)."""
    util = pytest.importorskip("ray.autoscaler._private.util")
    if not hasattr(util, "validate_config") or not hasattr(util, "prepare_config"):
        pytest.skip("this ray has no prepare_config/validate_config")
    prepared = util.prepare_config(copy.deepcopy(config))
    util.validate_config(prepared)

    broken = copy.deepcopy(config)
    broken["max_workers"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        util.validate_config(util.prepare_config(broken))


# --- node types ---------------------------------------------------------------


def test_cluster_name_and_provider(config: dict) -> None:
    assert config["cluster_name"] == "gan-pipeline"
    assert config["provider"]["type"] == "aws"


def test_head_is_cpu_only_and_runs_mlflow(config: dict) -> None:
    head = _head(config)
    assert head["resources"].get("GPU") == 0
    assert head["resources"].get("CPU", 0) >= 1, "head should offer CPUs to Ray Data"

    start = config["head_start_ray_commands"]
    ray_idx = next(i for i, c in enumerate(start) if "ray start --head" in c)
    mlflow_idx = next(i for i, c in enumerate(start) if "mlflow server" in c)
    assert mlflow_idx > ray_idx, "mlflow server should start after ray start --head"


def test_has_gpu_worker_type(config: dict) -> None:
    gpu_workers = [
        name
        for name, nt in config["available_node_types"].items()
        if name != config["head_node_type"] and nt["resources"].get("GPU", 0) >= 1
    ]
    assert gpu_workers, "need at least one worker node type with GPU >= 1"
    for name in gpu_workers:
        nt = config["available_node_types"][name]
        assert nt.get("min_workers", 0) == 0, f"{name}: GPUs should scale from zero"
        assert nt.get("max_workers", 0) >= 1


# --- network exposure -----------------------------------------------------------


def test_dashboard_on_loopback(config: dict) -> None:
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start


def test_nothing_bound_to_all_interfaces(config: dict) -> None:
    for cmd in _all_commands(config):
        assert "0.0.0.0" not in cmd, cmd
        assert not re.search(r"--host[= ]+(\S*::|\[::\])", cmd), cmd


def test_mlflow_host_is_not_public(config: dict) -> None:
    mlflow_cmds = [c for c in config["head_start_ray_commands"] if "mlflow server" in c]
    assert mlflow_cmds
    for cmd in mlflow_cmds:
        m = re.search(r"mlflow server.*?--host[= ]+(\S+)", cmd)
        assert m, f"mlflow server must pass an explicit --host: {cmd}"
        assert m.group(1) not in {"0.0.0.0", "::", "[::]"}, cmd


def test_token_auth_enabled_on_all_nodes(config: dict) -> None:
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert starts, key
        for cmd in starts:
            assert "RAY_AUTH_MODE=token" in cmd, f"{key}: {cmd}"
    # The token reaches the nodes as a file, copied from the launching machine.
    mounts = config.get("file_mounts") or {}
    assert any(remote.endswith("/.ray/auth_token") for remote in mounts), mounts


def test_workers_get_mlflow_uri_of_head(config: dict) -> None:
    worker_start = " ".join(config["worker_start_ray_commands"])
    assert "MLFLOW_TRACKING_URI=http://$RAY_HEAD_IP:5000" in worker_start


# --- secrets ------------------------------------------------------------------------


def test_no_secrets_in_file(raw_text: str) -> None:
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(raw_text), f"looks like a secret: {pattern.pattern}"


def test_no_dangling_ssh_key(config: dict) -> None:
    auth = config.get("auth") or {}
    assert auth.get("ssh_user") == "ubuntu"
    key = auth.get("ssh_private_key")
    if key is not None:
        assert Path(key).expanduser().is_file(), f"ssh_private_key {key} does not exist"


def test_commands_are_valid_bash(config: dict) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not available")
    for cmd in _all_commands(config):
        res = subprocess.run([bash, "-n", "-c", cmd], capture_output=True, text=True)
        assert res.returncode == 0, f"{cmd!r}: {res.stderr}"
