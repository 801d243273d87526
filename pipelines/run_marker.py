"""A small file beside a Ray run's checkpoints that tells the driver why training stopped early.

Ray Train V2 surfaces only checkpointed metrics in `Result.metrics`, so a divergence report
without a checkpoint would be lost; the run's storage (shared across nodes) carries it instead."""
from __future__ import annotations

import json
from typing import Optional

import pyarrow.fs

MARKER = "diverged.json"


def _locate(storage: str, name: str) -> tuple[pyarrow.fs.FileSystem, str]:
    fs, root = pyarrow.fs.FileSystem.from_uri(storage if "://" in storage else f"file://{storage}")
    return fs, f"{root.rstrip('/')}/{name}/{MARKER}"


def write_divergence(storage: str, name: str, reason: str) -> None:
    fs, path = _locate(storage, name)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(json.dumps({"reason": reason}).encode())


def read_divergence(storage: str, name: str) -> Optional[str]:
    fs, path = _locate(storage, name)
    if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as f:
        return json.loads(f.read().decode())["reason"]


def clear_divergence(storage: str, name: str) -> None:
    fs, path = _locate(storage, name)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound:
        fs.delete_file(path)
