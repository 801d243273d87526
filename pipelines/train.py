"""Train a GAN on Ray: Ray Data shards the dataset to Ray Train workers running DDP; MLflow tracks
the run and registers the generator.

    python pipelines/train.py [--config tune_configs/NAME.yaml] [--set key=value ...]
        [--num-workers N] [--use-gpu] [--experiment NAME] [--name RUN_NAME]

Re-running with the same --name resumes that run from its last checkpoint."""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from gan_core.config import Config, ConfigError, load_config
from gan_core.data import DataError, check_data, load_source

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "tune_configs" / "dcgan_digits.yaml"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG),
                   help="YAML run config (default: tune_configs/dcgan_digits.yaml, DCGAN on the "
                        "bundled digits)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.lr_g=1e-4 (repeatable)")
    p.add_argument("--num-workers", type=int, help="training workers (ray.num_workers)")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per worker, NCCL")
    p.add_argument("--experiment", help="MLflow experiment (mlflow.experiment)")
    p.add_argument("--name", help="run name; re-use it to resume (default: config name + time)")
    return p.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides)
    if args.num_workers is not None:
        overrides.append(f"ray.num_workers={args.num_workers}")
    if args.use_gpu:
        overrides.append("ray.use_gpu=true")
    if args.experiment:
        overrides.append(f"mlflow.experiment={args.experiment}")
    cfg = load_config(args.config, overrides)
    cfg.name = args.name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return cfg


def storage_path(cfg: Config, prefix: str = "") -> str:
    """Where Ray keeps checkpoints: a URI as given, or an absolute local directory, created and
    checked writable before Ray starts (ConfigError naming the `prefix`ed key)."""
    path = cfg.ray.storage_path
    if "://" in path:
        return path
    local = Path(path).expanduser().resolve()
    try:
        local.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=local):
            pass
    except OSError as e:
        raise ConfigError(f"{prefix}ray.storage_path", f"cannot write checkpoints under {local}: "
                          f"{e.strerror or e}") from None
    return str(local)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = resolve_config(args)
        data = load_source(cfg.data, seed=cfg.seed)
        check_data(cfg, data)
        storage = storage_path(cfg)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"data: {data.description}")
    for line in data.skipped[:5]:
        print(f"skipped: {line}")
    if len(data.skipped) > 5:
        print(f"skipped: {len(data.skipped) - 5} more, listed in the MLflow run's data/skipped.txt")
    from pipelines.run import run_training  # Ray and MLflow start only after the input is valid

    return run_training(cfg, data, storage)


if __name__ == "__main__":
    sys.exit(main())
