"""Train the digit classifier behind the image metrics (FID/KID on its features, IS on its logits)
on labelled MNIST, track it in MLflow and register it.

    python pipelines/train_evaluator.py --data MNIST_IDX_DIR [--epochs N] [--name mnist-evaluator]
        [--experiment evaluators] [--seed S] [--limit N] [--threads T]

A seeded, stratified 20% of the images is held out; the model is registered as a new version of
--name and takes the alias `champion` only when its held-out accuracy (`val_accuracy`) beats the
current champion's. Load it with pipelines.evaluators.load_evaluator("models:/NAME@champion").

This runs in one process, without Ray: a 10k-image classifier trains in a few CPU minutes, and
starting a cluster, sharding the data and all-reducing gradients would cost more than it saves."""
from __future__ import annotations

import argparse
import os
import sys
import time

from gan_core.config import ConfigError, DataConfig
from gan_core.data import DataError, load_source


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True,
                   help="MNIST IDX directory (or an images file) with labels, e.g. ../shared/data/mnist")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    p.add_argument("--name", default="mnist-evaluator",
                   help="registered model name (default mnist-evaluator)")
    p.add_argument("--experiment", default="evaluators", help="MLflow experiment (default evaluators)")
    p.add_argument("--seed", type=int, default=0, help="split, initialisation and augmentation seed")
    p.add_argument("--limit", type=int, help="use only the first N images (quick runs)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return p.parse_args(argv)


def _check_args(args: argparse.Namespace) -> None:
    for flag, value, low in (("--epochs", args.epochs, 1), ("--limit", args.limit, 20),
                             ("--batch-size", args.batch_size, 2), ("--threads", args.threads, 1)):
        if value is not None and value < low:
            raise ValueError(f"{flag} must be at least {low}, got {value}")
    if not args.lr > 0:
        raise ValueError(f"--lr must be positive, got {args.lr}")
    if not args.name.strip():
        raise ValueError("--name must not be empty")


def load_labelled(path: str, limit):
    """(x, y, description) from an MNIST IDX path; DataError when it has no labels."""
    data = load_source(DataConfig(source="mnist", path=path))
    if data.y is None:
        raise DataError(f"{path}: the classifier needs labels, but no labels file was found "
                        f"({data.description}); put the matching *-labels-idx1-ubyte[.gz] beside "
                        f"the images")
    x, y = data.x, data.y
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if x.shape[2:] != (28, 28):
        print(f"note: images are {x.shape[2]}x{x.shape[3]}; the classifier resizes them to 28x28")
    return x, y, data.description + (f"; first {len(x)} used" if limit is not None else "")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        _check_args(args)
        x, y, description = load_labelled(os.path.expanduser(args.data), args.limit)
    except (ConfigError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unreadable file or directory: name it, no traceback
        print(f"error: {args.data}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"data: {description}")

    from gan_core.evaluator_training import train_classifier

    started = time.perf_counter()
    try:
        model, metrics = train_classifier(x, y, epochs=args.epochs, batch_size=args.batch_size,
                                          lr=args.lr, seed=args.seed, threads=args.threads)
    except ValueError as e:  # labels out of range, too few images, ...
        print(f"error: {args.data}: {e}", file=sys.stderr)
        return 2
    train_seconds = time.perf_counter() - started
    return _track(args, description, model, metrics, train_seconds)


def _track(args, description: str, model, metrics: dict, train_seconds: float) -> int:
    # MLflow is imported only once there is a model to track.
    import mlflow
    from mlflow.tracking import MlflowClient

    from pipelines.evaluators import log_evaluator
    from pipelines.tracking import CHAMPION, log_metrics, tracking_uri, update_champion

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(args.experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(args.experiment)
    run = client.create_run(exp_id, run_name=f"{args.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                            tags={"data": description[:5000], "role": "evaluator"})
    run_id = run.info.run_id
    try:
        params = {"data": args.data, "epochs": args.epochs, "seed": args.seed, "limit": args.limit,
                  "batch_size": args.batch_size, "lr": args.lr, "val_fraction": 0.2,
                  "threads": args.threads, "architecture": "DigitClassifier",
                  "dropout": model.dropout}
        for key, value in params.items():
            client.log_param(run_id, key, "null" if value is None else value)
        for row in metrics["history"]:  # the learning curve, one step per epoch
            log_metrics(client, run_id, {f"epoch_{k}": v for k, v in row.items() if k != "epoch"},
                        step=row["epoch"])
        summary = {k: v for k, v in metrics.items() if k not in ("seconds", "history")}
        log_metrics(client, run_id, {**summary, "train_seconds": train_seconds}, step=args.epochs)
        info = log_evaluator(run_id, model, args.name, summary)
        version = info.registered_model_version
        moved, reason = update_champion(client, args.name, version, "val_accuracy", "max")
        client.set_tag(run_id, CHAMPION, f"{moved}: {reason}")
    except BaseException as e:
        client.set_tag(run_id, "failure", str(e)[:5000])
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    print(f"held-out accuracy {metrics['val_accuracy']:.4f} on {metrics['num_val']} images "
          f"(train {metrics['train_accuracy']:.4f} on {metrics['num_train']}), "
          f"{metrics['epochs']} epochs in {train_seconds:.0f}s")
    print(f"registered {args.name} v{version} ({info.model_uri}); champion "
          f"{'moved to' if moved else 'stays, not'} v{version}: {reason}")
    print(f"model URI: models:/{args.name}/{version}"
          + (f" = models:/{args.name}@{CHAMPION}" if moved else "") + f" (tracking URI {uri})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
