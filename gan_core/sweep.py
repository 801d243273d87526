"""Sweep configuration: a base run config, a search space over its dotted keys, a scheduler and
the metric to optimise. Parsed and checked here (no Ray), turned into Ray Tune objects by
pipelines/tune.py.

    name: grid-asha
    base: grid_mlp.yaml            # a run config, relative to this file
    overrides: {train.epochs: 6}   # applied to the base before sampling
    metric: kl
    mode: min
    num_samples: 4
    max_concurrent_trials: 2       # optional; default: what the cluster's CPUs/GPUs allow
    scheduler: {name: asha, grace_period: 2, reduction_factor: 2}   # or pbt, or none
    search_space:
      train.lr_g: {loguniform: [1.0e-4, 1.0e-3]}
      loss.name: {choice: [nonsaturating, hinge]}
      model.pack: {grid: [1, 2]}
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .config import Config, ConfigError, _merge, _nest, checked_mode, from_dict, reported_metrics

DISTRIBUTIONS = ("loguniform", "uniform", "choice", "grid")
SCHEDULERS = {
    "none": {},
    "asha": {"grace_period": 1, "reduction_factor": 2},
    "pbt": {"perturbation_interval": 1, "quantile_fraction": 0.25, "resample_probability": 0.25,
            "synch": False},
}
# Keys that cannot change under PBT: a donor's checkpoint must load into the mutated trial.
PBT_MUTABLE = ("train.lr_g", "train.lr_d", "train.beta1", "train.beta2", "train.n_critic",
               "loss.gp_weight", "loss.r1_gamma", "loss.r1_interval", "train.ema_half_life_images")
TRIAL_FIXED = {"train": {"checkpoint_every_epochs": 1, "sample_every_epochs": 1},
               "eval": {"every_images": 0}, "ray": {}}
TOP_KEYS = ("name", "base", "overrides", "metric", "mode", "num_samples", "max_concurrent_trials",
            "scheduler", "search_space")


@dataclass
class Dist:
    kind: str  # one of DISTRIBUTIONS
    values: list  # [low, high] for ranges, the candidates for choice / grid


@dataclass
class Sweep:
    name: str
    base: Config  # the base run config with overrides applied
    base_values: dict  # the same as nested YAML values (trial configs merge into a copy)
    space: dict[str, Dist]
    metric: str
    mode: str  # the metric's direction (config.better_mode)
    num_samples: int = 1
    max_concurrent_trials: Optional[int] = None
    scheduler: str = "none"
    scheduler_args: dict = field(default_factory=dict)

    def num_trials(self) -> int:
        """num_samples times every grid's size (Tune repeats the grid per sample)."""
        return self.num_samples * math.prod(len(d.values) for d in self.space.values()
                                            if d.kind == "grid")

    def trial_config(self, params: dict) -> Config:
        """The run config of one trial: the base with its sampled values, evaluated, sampled
        and checkpointed every epoch (one Tune report per epoch: ASHA's and PBT's time unit)."""
        values = _merge(copy.deepcopy(self.base_values), copy.deepcopy(TRIAL_FIXED))
        values["ray"]["num_to_keep"] = max(2, self.base.ray.num_to_keep)  # see sweep_trial.py
        for key, value in params.items():
            values = _merge(values, _nest(key, value))
        return from_dict(values)


def _read_yaml(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ConfigError(what, f"no such file: {path}")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(what, f"{path} is not valid YAML: {e}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(what, f"{path} must hold a mapping at the top level")
    return loaded


def _check_value(base_values: dict, key: str, value: Any, where: str) -> None:
    """The base config with `key` set to `value` must be a valid config."""
    try:
        from_dict(_merge(copy.deepcopy(base_values), _nest(key, value)))
    except ConfigError as e:
        if e.key == key:
            raise ConfigError(where, f"value {value!r}: {e}") from None
        raise ConfigError(where, f"value {value!r} makes the config invalid: {e}") from None


# Fixed per sweep: the report cadence Tune schedules on (TRIAL_FIXED), the run length ASHA's
# max_t and the metric come from, and the trial's own name.
_CLUSTERED_ONCE = "the clusters are computed once from the base, and all trials share one dataset"
UNSEARCHABLE = {"train.epochs": "ASHA's max_t and the report count follow the base's epochs",
                "train.checkpoint_every_epochs": "trials checkpoint every epoch",
                "train.sample_every_epochs": "trials are evaluated every epoch",
                "name": "each trial is named by Tune",
                "model.num_classes": "the labels are checked against the base once, and all "
                                     "trials share one dataset",
                "data.clusters": _CLUSTERED_ONCE,
                "data.cluster_channels": _CLUSTERED_ONCE}


def _field_type(key: str):
    """The config type of a dotted key (or a top-level one such as `seed`), else None."""
    hints = typing.get_type_hints(Config)
    if "." not in key:
        return hints.get(key) if key in ("seed", "name") else None
    section, name = key.split(".", 1)
    if section not in hints or not dataclasses.is_dataclass(hints[section]):
        return None
    return typing.get_type_hints(hints[section]).get(name)


def _parse_dist(key: str, spec: Any, base_values: dict) -> Dist:
    where = f"search_space.{key}"
    typ = _field_type(key)
    if typ is None:
        section, _, name = key.rpartition(".")
        fields = list(typing.get_type_hints(typing.get_type_hints(Config).get(section, Config)))
        close = difflib.get_close_matches(name, fields, n=1) if section else []
        hint = f" (did you mean '{section}.{close[0]}'?)" if close else ""
        raise ConfigError(where, f"not a config key{hint}; use section.key, e.g. train.lr_g")
    section = key.split(".")[0]
    if section in ("data", "ray", "mlflow", "eval"):
        raise ConfigError(where, f"'{section}.*' keys are shared by every trial of a sweep (one "
                                 "dataset, cluster, registry and metric); set them in the base")
    if key in UNSEARCHABLE:
        raise ConfigError(where, f"cannot be searched: {UNSEARCHABLE[key]}")
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ConfigError(where, f"must be one of {{{': ..., '.join(DISTRIBUTIONS)}: ...}}, "
                                 f"got {spec!r}")
    kind, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise ConfigError(where, f"{kind} needs a non-empty list, got {values!r}")
    if kind in ("loguniform", "uniform"):
        ok = len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                      and math.isfinite(v) for v in values)
        if not ok or values[0] >= values[1]:
            raise ConfigError(where, f"{kind} needs [low, high] numbers with low < high, got {values!r}")
        if kind == "loguniform" and values[0] <= 0:
            raise ConfigError(where, f"loguniform needs low > 0, got {values[0]!r}")
        if typ is int:
            raise ConfigError(where, f"an integer key: use choice or grid, not {kind}")
        values = [float(v) for v in values]
    for v in values:
        _check_value(base_values, key, v, where)
    return Dist(kind, values)


def _check_scheduler(name: str, args: dict, epochs: int) -> None:
    def need(key, ok, what):
        if not ok:
            raise ConfigError(f"scheduler.{key}", f"must be {what}, got {args[key]!r}")

    if name == "asha":
        need("grace_period", 1 <= args["grace_period"] <= epochs, f"in [1, epochs={epochs}]")
        need("reduction_factor", args["reduction_factor"] > 1, "> 1")
    if name == "pbt":
        need("perturbation_interval", 1 <= args["perturbation_interval"] < epochs,
             f"in [1, epochs={epochs}) so that at least one perturbation happens")
        need("quantile_fraction", 0 < args["quantile_fraction"] <= 0.5, "in (0, 0.5]")
        need("resample_probability", 0 <= args["resample_probability"] <= 1, "in [0, 1]")


def load_sweep(path: str, overrides: dict | None = None) -> Sweep:
    """Parse and check a sweep file; every problem is a ConfigError naming the key."""
    p = Path(path)
    raw = _read_yaml(p, "--config")
    raw.update(overrides or {})
    for key in raw:
        if key not in TOP_KEYS:
            raise ConfigError(key, f"unknown sweep key; known: {', '.join(TOP_KEYS)}")
    for key in ("name", "base", "metric", "search_space"):
        if key not in raw:
            raise ConfigError(key, "required in a sweep file")
    base_values = _read_yaml((p.parent / str(raw["base"])).resolve(), "base")
    _check_value(base_values, "name", str(raw["name"]), "name")
    for key, value in (raw.get("overrides") or {}).items():
        base_values = _merge(base_values, _nest(str(key), value))
    try:
        base = from_dict(copy.deepcopy(base_values))
    except ConfigError as e:
        raise ConfigError(f"base.{e.key}", str(e)) from None
    if not isinstance(raw["search_space"], dict) or not raw["search_space"]:
        raise ConfigError("search_space", "must map config keys to distributions")
    space = {str(k): _parse_dist(str(k), v, base_values) for k, v in raw["search_space"].items()}

    metric = raw["metric"]
    reported = reported_metrics(base)
    if metric not in reported:
        raise ConfigError("metric", f"no trial reports {metric!r}; the base config reports: "
                                    f"{', '.join(reported) or 'none (set eval.metrics)'}")
    mode = checked_mode("mode", metric, raw.get("mode"))
    num_samples = raw.get("num_samples", 1)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ConfigError("num_samples", f"must be a positive integer, got {num_samples!r}")
    concurrent = raw.get("max_concurrent_trials")
    if concurrent is not None and (isinstance(concurrent, bool) or not isinstance(concurrent, int)
                                   or concurrent < 1):
        raise ConfigError("max_concurrent_trials", f"must be a positive integer, got {concurrent!r}")

    sched = raw.get("scheduler") or {"name": "none"}
    if not isinstance(sched, dict) or sched.get("name") not in SCHEDULERS:
        raise ConfigError("scheduler.name", f"choose one of {', '.join(SCHEDULERS)}, got "
                                            f"{sched.get('name') if isinstance(sched, dict) else sched!r}")
    name = sched["name"]
    args = dict(SCHEDULERS[name])
    for k, v in sched.items():
        if k == "name":
            continue
        if k not in args:
            raise ConfigError(f"scheduler.{k}", f"unknown for {name}; known: {', '.join(args) or 'none'}")
        if type(v) is not type(args[k]) and not (isinstance(args[k], float) and isinstance(v, int)):
            raise ConfigError(f"scheduler.{k}", f"must be a {type(args[k]).__name__}, got {v!r}")
        args[k] = v
    _check_scheduler(name, args, base.train.epochs)
    if name == "pbt":
        frozen = [k for k in space if k not in PBT_MUTABLE]
        if frozen:
            raise ConfigError(f"search_space.{frozen[0]}", "PBT restores a donor trial's "
                              "checkpoint into the mutated trial, so it can only mutate "
                              f"{', '.join(PBT_MUTABLE)}")
        if any(d.kind == "grid" for d in space.values()):
            raise ConfigError("search_space", "PBT mutates values; use choice instead of grid")
    return Sweep(name=str(raw["name"]), base=base, base_values=base_values, space=space,
                 metric=metric, mode=mode, num_samples=num_samples,
                 max_concurrent_trials=concurrent, scheduler=name, scheduler_args=args)
