"""Time to quality: wall time and images seen until a default config first reaches its target,
read from the run's periodic evaluations.

    .venv/bin/python bench/time_to_quality.py [--suites grid,mnist,selfcond] [--mnist-epochs 12]
        [--mnist ../shared/data/mnist] [--seed 0] [--set KEY=VALUE ...] [--workdir DIR]

grid: tune_configs/grid_mlp.yaml as shipped (2 workers, 20 epochs of 200k points), evaluated
every 50,000 images (2,500 samples); target 25/25 modes with >= 90% high-quality samples.
mnist: tune_configs/dcgan_mnist.yaml as shipped (2 workers, the 10k MNIST test split unless
--mnist has more) for --mnist-epochs epochs, classifier IS (2,000 samples, the project's MNIST
evaluator, trained first by pipelines/train_evaluator.py and not counted) every 20,000 images;
target IS >= 9. selfcond: the same for tune_configs/selfcond_mnist.yaml (the unlabelled G
conditioned on its own clusters of the digits). `from launch` counts from
starting train.py (imports, Ray start, data loading included), `from run start` from the MLflow
run's creation (just before the Ray trainer starts). A target not met within the budget is
reported with the best value reached. Uses bench/quality.py's Store and train: every run is
pipelines/train.py in a fresh MLflow store; `--set` overrides a key in every run."""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from quality import Store, add_set_option, check_sets, ensure_evaluator, train  # noqa: E402

MNIST_EVAL = ["eval.every_images=20000", "eval.metrics=is", "eval.num_samples=2000",
              "eval.evaluator=models:/mnist-evaluator@champion"]
MNIST_TARGET = (("is",), lambda m: m["is"] >= 9)
# suite -> (config, run overrides, metrics read at each evaluation, the target reached)
SUITES = {
    "grid": ("grid_mlp.yaml", ["eval.every_images=50000"], ("modes", "high_quality"),
             lambda m: m["modes"] >= 25 and m["high_quality"] >= 0.9),
    "mnist": ("dcgan_mnist.yaml", MNIST_EVAL, *MNIST_TARGET),
    # its registry ranks by FID, which these evaluations leave out
    "selfcond": ("selfcond_mnist.yaml", [*MNIST_EVAL, "mlflow.metric=is", "mlflow.mode=max"],
                 *MNIST_TARGET),
}
MNIST_SUITES = ("mnist", "selfcond")
TARGET_TEXT = {"grid": "25/25 modes, >= 90% HQ", "mnist": "IS >= 9", "selfcond": "IS >= 9"}


def evaluations(store: Store, name: str, keys) -> tuple[list[tuple[int, int, dict]], int]:
    """[(eval_images_seen, timestamp ms, {key: value})] of run `name` in order, and its start ms."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store.uri)
    exp = client.get_experiment_by_name("bench")
    (run,) = client.search_runs([exp.experiment_id], f"tags.`gan.run_name` = '{name}'")
    hist = {k: {m.step: m for m in client.get_metric_history(run.info.run_id, k)}
            for k in (*keys, "eval_images_seen")}
    rows = [(int(hist["eval_images_seen"][s].value), hist["eval_images_seen"][s].timestamp,
             {k: hist[k][s].value for k in keys}) for s in sorted(hist["eval_images_seen"])
            if all(s in hist[k] for k in keys)]
    return rows, run.info.start_time


def suite_row(store: Store, suite: str, seed: int, sets: list[str]) -> tuple:
    config, overrides, keys, reached = SUITES[suite]
    name = f"ttq-{suite}-s{seed}"
    launch = time.time()
    train(store, config, name, [f"seed={seed}", *overrides, *sets])
    total = time.time() - launch
    rows, start_ms = evaluations(store, name, keys)
    hit = next((r for r in rows if reached(r[2])), None)
    if not rows:
        sys.exit(f"{suite}: the run logged no evaluation ({', '.join(keys)})")
    if hit is None:
        best = max(rows, key=lambda r: r[2][keys[-1]])
        return (suite, f"not reached in {total / 60:.1f} min", best[0], None, None, best[2], len(rows))
    images, ts, values = hit
    return (suite, "reached", images, ts / 1000 - launch, (ts - start_ms) / 1000, values, len(rows))


def suite_sets(suite: str, args: argparse.Namespace) -> list[str]:
    if suite in MNIST_SUITES:
        return [f"data.path={args.mnist}", f"train.epochs={args.mnist_epochs}"]
    return []


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suites", default="grid,mnist")
    p.add_argument("--mnist-epochs", type=int, default=12, help="each MNIST run's budget in epochs")
    p.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "mnist"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="keep the runs' MLflow store (mlflow.db) and Ray results here, "
                                      "to evaluate the registered models afterwards (default: a "
                                      "temporary folder, deleted)")
    add_set_option(p)
    args = p.parse_args()
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    for s in suites:
        if s not in SUITES:
            sys.exit(f"unknown suite {s!r}; known: {', '.join(SUITES)}")
    check_sets(p, args.set, tuple((SUITES[s][0], [*SUITES[s][1], *suite_sets(s, args)]) for s in suites))
    rows = []
    if args.workdir:
        if (Path(args.workdir) / "mlflow.db").exists():  # train.py would resume the old runs
            p.error(f"--workdir {args.workdir} already holds an mlflow.db; name a new folder")
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(args.workdir) if args.workdir else tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp).resolve(), args.set)
        if set(MNIST_SUITES) & set(suites):
            ensure_evaluator(store, args.mnist)
        for suite in suites:
            rows.append(suite_row(store, suite, args.seed, suite_sets(suite, args)))
    print(f"\n{'suite':8} {'target':24} {'result':22} {'images seen':>12} {'from launch s':>14} "
          f"{'from run start s':>17} {'evals':>6}  values at that point (or best)")
    for suite, result, images, launch_s, start_s, values, n in rows:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        print(f"{suite:8} {TARGET_TEXT[suite]:24} {result:22} {images:12,} "
              f"{launch_s if launch_s is not None else float('nan'):14.1f} "
              f"{start_s if start_s is not None else float('nan'):17.1f} {n:6}  {shown}")


if __name__ == "__main__":
    main()
