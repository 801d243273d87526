"""Full training checkpoints: G, D, G_ema, both optimizers and counters (the Ray worker
reseeds its RNG from (seed, rank, epoch), so no RNG state needs saving).

Files are plain tensors and containers loaded with `weights_only=True` (no pickled code), and are
written to a temporary name then renamed, so a failed write never clobbers the previous file."""
from __future__ import annotations

import os
from pathlib import Path

import torch

STATE_FILE = "state.pt"


def save_state(directory: str | os.PathLike, state: dict) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / STATE_FILE
    tmp = directory / (STATE_FILE + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, final)
    except (OSError, RuntimeError) as e:  # disk full, unwritable: the previous file stays
        tmp.unlink(missing_ok=True)
        raise OSError(f"cannot write checkpoint {final}: {e}") from None
    return final


def load_state(directory: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or tampered file
        raise ValueError(f"checkpoint {path} cannot be loaded safely: {e}") from None

