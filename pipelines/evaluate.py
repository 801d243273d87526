"""Evaluate a generator from the MLflow registry: each metric beside its real-data floor, printed
as a table and logged to the model's MLflow run.

    python pipelines/evaluate.py --model models:/NAME@champion --metrics fid,kid,is,pr [--n N]
        [--evaluator models:/mnist-evaluator@champion] [--data PATH] [--seed S] [--per-class]
        [--truncation T] [--draws K]

The generator's n samples are compared with n real images (half A); the floor compares n other
real images (half B) with the same half A, so both columns carry the same sample-size bias.
A class-conditional generator draws the classes evenly; cond_acc is the share the evaluator
reads as the class asked for (floor: its accuracy on half B), and --per-class adds the FID of
each class against the real images of that class. Toy models get their toy metrics, with a
fresh draw from the true distribution as the floor. --truncation T draws z within +-T (BigGAN's
truncation trick), logged under eval/truncation_T/. --draws K repeats all of it for seeds S..S+K-1
(new halves and new samples each time) and reports each figure's mean and standard deviation:
at n = 5,000 of the 10k MNIST test digits the floor moves by 20% from one split to the next, so
one draw's generator/floor ratio is only as good as its split."""
from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from gan_core.config import IMAGE_METRICS, TOY_SOURCES, ConfigError
from gan_core.data import DataError, load_source
from gan_core.data.toys import load_toy
from gan_core.data.transforms import preprocess_images
from gan_core.evaluation import per_class_fid, quality_metrics, sample, sample_labels
from gan_core.text import encode

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
    p.add_argument("--truncation", type=float, metavar="T",
                   help="draw z within +-T (the truncation trick; default: the full normal)")
    p.add_argument("--draws", type=int, default=1, metavar="K",
                   help="score K draws (seeds S..S+K-1) and report mean and sd (default 1)")
    p.add_argument("--per-class", action="store_true",
                   help="also the FID of each class (class-conditional generators)")
    return p.parse_args(argv)


def real_halves(cfg, n: int, seed: int, path: str | None) -> tuple[tuple, tuple]:
    """Two disjoint sets of n real samples in the generator's format, each with its labels and
    one caption per sample (None when the data has none)."""
    # the real halves' labels are classes: a clustered model's clusters are refused for them
    data_cfg = dataclasses.replace(cfg.data, path=path or cfg.data.path, clusters=0)
    if cfg.data.source in TOY_SOURCES:
        data = load_toy(cfg.data.source, 2 * n, seed=seed + 1)
        return (data.x[:n], None, None), (data.x[n:], None, None)
    data = load_source(data_cfg, seed=seed)
    if len(data.x) < 2 * n:
        raise ValueError(f"--n {n} needs {2 * n} real images (n for the comparison, n for the "
                         f"floor); {data_cfg.path or data_cfg.source} has {len(data.x)}: lower --n")
    idx = np.random.default_rng(seed).permutation(len(data.x))[:2 * n]
    real = preprocess_images(data.x[idx], cfg.data.image_size, cfg.data.channels)
    y = data.y[idx] if data.y is not None else None
    rng = np.random.default_rng(seed + 1)
    text = None if data.text is None else [data.text[i][rng.integers(len(data.text[i]))] for i in idx]
    a, b = slice(None, n), slice(n, None)
    return tuple((real[h], None if y is None else y[h], None if text is None else text[h])
                 for h in (a, b))


def _check_conditional(metrics: list, per_class: bool, conditional: bool, labelled: bool,
                       clusters: int = 0) -> None:
    if not ("cond_acc" in metrics or per_class):
        return
    what = "cond_acc" if "cond_acc" in metrics else "--per-class"
    if not conditional:
        raise ValueError(f"{what} needs a conditional generator")
    if clusters:
        raise ValueError(f"{what} needs classes; this generator's labels are "
                         f"data.clusters={clusters} k-means clusters")
    if not labelled:
        raise ValueError(f"{what} needs labelled real data for its floor")


def main(argv=None) -> int:
    args = parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = sorted(set(metrics) - set(IMAGE_METRICS))
    if unknown or args.n < 2 or args.draws < 1:
        print(f"error: unknown metrics {unknown} (known: {', '.join(IMAGE_METRICS)})" if unknown
              else f"error: --n must be at least 2, got {args.n}" if args.n < 2
              else f"error: --draws must be at least 1, got {args.draws}", file=sys.stderr)
        return 2
    if args.truncation is not None and not args.truncation > 0:
        print(f"error: --truncation must be positive, got {args.truncation}", file=sys.stderr)
        return 2
    import mlflow

    from pipelines.evaluators import load_evaluator
    from pipelines.tracking import load_generator, log_metrics, tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    try:
        gen = load_generator(args.model)
        cfg = gen.cfg
        if cfg.model.family == "srgan":  # nothing to sample: it needs low-res inputs
            raise ValueError(f"{args.model} is a super-resolution model; training logs its PSNR/"
                             "SSIM on held-out crops (bench/quality.py --suites sr compares them)")
        toy = cfg.data.source in TOY_SOURCES
        if toy:
            metrics = []
        draws, net = [], None
        for seed in range(args.seed, args.seed + args.draws):
            (real_a, y_a, _), (real_b, y_b, text_b) = real_halves(cfg, args.n, seed, args.data)
            labels = sample_labels(gen.G, args.n)
            condition = labels
            if cfg.model.text_max_len:  # drawn for half B's captions: the floor's own
                condition, labels = encode(text_b, cfg.model.text_max_len), y_b
            if not draws:  # checked, and the feature net loaded, before the first samples
                _check_conditional(metrics, args.per_class, labels is not None, y_b is not None,
                                   cfg.data.clusters)
                if "attr_corr" in metrics and not cfg.model.text_max_len:
                    raise ValueError("attr_corr needs a text-to-image generator")
                needs_net = set(metrics) - {"swd", "attr_corr"} or args.per_class
                net = load_evaluator(args.evaluator) if needs_net else None
            fake = sample(gen.G, args.n, seed=seed, labels=condition, truncation=args.truncation)
            figures = quality_metrics(cfg.data.source, fake, metrics, real_a, net, labels=labels,
                                      captions=text_b)
            floor = quality_metrics(cfg.data.source, real_b, metrics, real_a, net, labels=y_b,
                                    captions=text_b)
            if args.per_class:
                figures.update(per_class_fid(fake, labels, real_a, y_a, net))
                floor.update(per_class_fid(real_b, y_b, real_a, y_a, net))
            draws.append((figures, floor))
    except (ValueError, ConfigError, DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    trunc = "" if args.truncation is None else f", z truncated at {args.truncation:g}"
    seeds = f"seed {args.seed}" if args.draws == 1 else \
        f"seeds {args.seed}..{args.seed + args.draws - 1} (mean and sd of {args.draws} draws)"
    print(f"{args.model}: {args.n} samples vs {args.n} real ({cfg.data.source}), {seeds}{trunc}")
    # (generator, floor) x (mean, sd) of each figure over the draws
    stats = {key: [(float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else None)
                   for v in ([f[key] for f, _ in draws], [fl[key] for _, fl in draws])]
             for key in draws[0][0]}
    w = max([16, *map(len, stats)])
    sd = args.draws > 1
    columns = [("generator", 12), ("sd", 8), ("real floor", 12), ("sd", 8)] if sd else \
        [("generator", 12), ("real floor", 12)]
    print(f"{'metric':{w}}" + "".join(f" {name:>{width}}" for name, width in columns))
    for key, ((g, g_sd), (fl, fl_sd)) in stats.items():
        values = (g, g_sd, fl, fl_sd) if sd else (g, fl)
        print(f"{key:{w}}" + "".join(f" {v:{width}.4f}" for v, (_, width) in zip(values, columns)))
    # truncated figures under their own keys: they must not pass for the full-normal ones
    prefix = "eval/" if args.truncation is None else f"eval/truncation_{args.truncation:g}/"
    logged = {f"{prefix}draws": args.draws}
    for key, ((g, g_sd), (fl, fl_sd)) in stats.items():
        logged |= {f"{prefix}{key}": g, f"{prefix}{key}_real_floor": fl}
        if sd:
            logged |= {f"{prefix}{key}_sd": g_sd, f"{prefix}{key}_real_floor_sd": fl_sd}
    log_metrics(mlflow.tracking.MlflowClient(), gen.run_id, logged, 0)
    print(f"logged to MLflow run {gen.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
