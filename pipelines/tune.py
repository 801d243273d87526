"""Sweep a GAN config with Ray Tune: every trial is a multi-worker Ray Train run; ASHA stops
weak trials early, PBT copies strong trials' full state into weak ones; MLflow holds a parent
run per sweep and a nested run per trial; the best trial's generator is registered.

    python pipelines/tune.py --config tune_configs/sweep_grid_asha.yaml [--num-samples N]
        [--max-concurrent-trials N] [--resume]

Re-running with --resume continues an interrupted sweep of the same name."""
from __future__ import annotations

import argparse
import functools
import math
import sys

from gan_core.config import ConfigError
from gan_core.data import DataError, check_data, load_source
from gan_core.sweep import Sweep, load_sweep
from pipelines.train import storage_path

DATA_CPUS = 1.0  # CPUs left free for Ray Data and Tune's own actors when sizing concurrency


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="sweep YAML, e.g. tune_configs/sweep_grid_asha.yaml")
    p.add_argument("--num-samples", type=int, help="trials to sample (num_samples)")
    p.add_argument("--max-concurrent-trials", type=int, help="default: what the cluster allows")
    p.add_argument("--resume", action="store_true", help="continue the interrupted sweep")
    return p.parse_args(argv)


def search_space(sweep: Sweep) -> dict:
    from ray import tune

    make = {"loguniform": lambda v: tune.loguniform(*v), "uniform": lambda v: tune.uniform(*v),
            "choice": tune.choice, "grid": tune.grid_search}
    return {key: make[d.kind](d.values) for key, d in sweep.space.items()}


def scheduler(sweep: Sweep):
    from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining

    args = sweep.scheduler_args
    if sweep.scheduler == "asha":
        return ASHAScheduler(time_attr="training_iteration", max_t=sweep.base.train.epochs, **args)
    if sweep.scheduler == "pbt":
        bounds = {k: tuple(d.values) for k, d in sweep.space.items()
                  if d.kind in ("loguniform", "uniform")}
        return PopulationBasedTraining(time_attr="training_iteration",
                                       hyperparam_mutations=search_space(sweep),
                                       custom_explore_fn=functools.partial(clip_to_bounds, bounds),
                                       **args)
    return None


def clip_to_bounds(bounds: dict, config: dict) -> dict:
    """PBT perturbs by x0.8 / x1.2 without limits; keep every range key inside its range."""
    for key, (low, high) in bounds.items():
        if key in config:
            config[key] = min(max(config[key], low), high)
    return config


def trial_resources(sweep: Sweep) -> dict:
    r = sweep.base.ray
    return {"CPU": r.num_workers * r.cpus_per_worker, "GPU": r.num_workers if r.use_gpu else 0}


def concurrency(sweep: Sweep, cluster: dict) -> int:
    """Trials that fit at once, leaving DATA_CPUS for Ray Data (the cluster holds one: checked
    by run.start)."""
    need = trial_resources(sweep)
    if need["CPU"] > cluster.get("CPU", 0) - DATA_CPUS:
        print(f"warning: a trial takes {need['CPU']:g} of the cluster's {cluster.get('CPU', 0):g} "
              "CPUs, leaving less than one for Ray Data: lower ray.cpus_per_worker",
              file=sys.stderr)
    if sweep.max_concurrent_trials:
        return sweep.max_concurrent_trials
    fits = [math.floor((cluster.get("CPU", 0) - DATA_CPUS) / need["CPU"])]
    if need["GPU"]:
        fits.append(math.floor(cluster.get("GPU", 0) / need["GPU"]))
    return max(1, min(fits))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.resume and (args.num_samples or args.max_concurrent_trials):
        print("error: --resume continues the sweep as it was started: drop --num-samples and "
              "--max-concurrent-trials (and resume with the same sweep file)", file=sys.stderr)
        return 2
    try:
        overrides = {k: v for k, v in (("num_samples", args.num_samples),
                                       ("max_concurrent_trials", args.max_concurrent_trials)) if v is not None}
        sweep = load_sweep(args.config, overrides)
        data = load_source(sweep.base.data, seed=sweep.base.seed)
        check_data(sweep.base, data, prefix="base.")
        root = storage_path(sweep.base, prefix="base.")
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"sweep '{sweep.name}': {len(sweep.space)} keys, {sweep.num_samples} samples, "
          f"scheduler {sweep.scheduler}, {sweep.mode} {sweep.metric}; data: {data.description}")
    from pipelines.sweep_run import run_sweep  # Ray and MLflow start only after the input is valid

    return run_sweep(sweep, data, root, resume=args.resume, config_path=args.config)


if __name__ == "__main__":
    sys.exit(main())
