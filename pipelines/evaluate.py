"""Evaluate a generator from the MLflow registry: each metric beside its real-data floor, printed
as a table and logged to the model's MLflow run.

    python pipelines/evaluate.py --model models:/NAME@champion --metrics fid,kid,is,pr [--n N]
        [--evaluator models:/mnist-evaluator@champion] [--data PATH] [--seed S]

The generator's n samples are compared with n real images (half A); the floor compares n other
real images (half B) with the same half A, so both columns carry the same sample-size bias.
Toy models get their toy metrics, with a fresh draw from the true distribution as the floor."""
from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from gan_core.config import IMAGE_METRICS, TOY_SOURCES, ConfigError
from gan_core.data import DataError, load_source
from gan_core.data.toys import load_toy
from gan_core.data.transforms import preprocess_images
from gan_core.evaluation import quality_metrics, sample

DEFAULT_EVALUATOR = "models:/mnist-evaluator@champion"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="generator URI, e.g. models:/mnist-dcgan@champion")
    p.add_argument("--metrics", default="fid,kid,is,pr",
                   help=f"comma-separated, of {', '.join(IMAGE_METRICS)} (ignored for toy models)")
    p.add_argument("--n", type=int, default=5000, help="generated samples (default 5000)")
    p.add_argument("--evaluator", default=DEFAULT_EVALUATOR, help="feature net URI (default %(default)s)")
    p.add_argument("--data", help="real data path, if not where the model was trained from")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def real_halves(cfg, n: int, seed: int, path: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sets of n real samples in the generator's format."""
    data_cfg = dataclasses.replace(cfg.data, path=path or cfg.data.path)
    if cfg.data.source in TOY_SOURCES:
        data = load_toy(cfg.data.source, 2 * n, seed=seed + 1)
        return data.x[:n], data.x[n:]
    x = load_source(data_cfg, seed=seed).x
    if len(x) < 2 * n:
        raise ValueError(f"--n {n} needs {2 * n} real images (n for the comparison, n for the "
                         f"floor); {data_cfg.path or data_cfg.source} has {len(x)}: lower --n")
    idx = np.random.default_rng(seed).permutation(len(x))[:2 * n]
    real = preprocess_images(x[idx], cfg.data.image_size, cfg.data.channels)
    return real[:n], real[n:]


def main(argv=None) -> int:
    args = parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = sorted(set(metrics) - set(IMAGE_METRICS))
    if unknown or args.n < 2:
        print(f"error: unknown metrics {unknown} (known: {', '.join(IMAGE_METRICS)})" if unknown
              else f"error: --n must be at least 2, got {args.n}", file=sys.stderr)
        return 2
    import mlflow

    from pipelines.evaluators import load_evaluator
    from pipelines.tracking import load_generator, tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    try:
        gen = load_generator(args.model)
        cfg = gen.cfg
        toy = cfg.data.source in TOY_SOURCES
        if toy:
            metrics = []
        real_a, real_b = real_halves(cfg, args.n, args.seed, args.data)
        needs_net = set(metrics) - {"swd"}
        net = load_evaluator(args.evaluator) if needs_net else None
        fake = sample(gen.G, args.n, seed=args.seed)
        figures = quality_metrics(cfg.data.source, fake, metrics, real_a, net)
        floor = quality_metrics(cfg.data.source, real_b, metrics, real_a, net)
    except (ValueError, ConfigError, DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.model}: {args.n} samples vs {args.n} real ({cfg.data.source}), seed {args.seed}")
    print(f"{'metric':16} {'generator':>12} {'real floor':>12}")
    for key, value in figures.items():
        print(f"{key:16} {value:12.4f} {floor.get(key, float('nan')):12.4f}")
    client = mlflow.tracking.MlflowClient()
    for key, value in figures.items():
        client.log_metric(gen.run_id, f"eval/{key}", float(value))
        client.log_metric(gen.run_id, f"eval/{key}_real_floor", float(floor[key]))
    print(f"logged to MLflow run {gen.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
