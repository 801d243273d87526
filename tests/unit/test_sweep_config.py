"""Sweep files: parsing, the trial configs they produce, and every bad input named by key."""
from __future__ import annotations

import pytest
import yaml

from gan_core.config import ConfigError
from gan_core.sweep import load_sweep
from tests.conftest import REPO

GOOD = {
    "name": "s1",
    "base": str(REPO / "tune_configs" / "grid_mlp.yaml"),
    "metric": "kl",
    "mode": "min",
    "num_samples": 3,
    "scheduler": {"name": "asha", "grace_period": 2},
    "search_space": {"train.lr_g": {"loguniform": [1e-4, 1e-3]},
                     "loss.name": {"choice": ["nonsaturating", "hinge"]},
                     "model.pack": {"grid": [1, 2]}},
}


def write(tmp_path, **changes):
    spec = {**GOOD, **changes}
    spec = {k: v for k, v in spec.items() if v is not None}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def error(tmp_path, **changes) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        load_sweep(write(tmp_path, **changes))
    return e.value


def test_good_sweep_and_trial_config(tmp_path):
    sweep = load_sweep(write(tmp_path, overrides={"train.epochs": 5}))
    assert sweep.scheduler_args == {"grace_period": 2, "reduction_factor": 2}
    assert sweep.base.train.epochs == 5 and sweep.space["model.pack"].values == [1, 2]
    cfg = sweep.trial_config({"train.lr_g": 2.5e-4, "loss.name": "hinge", "model.pack": 2})
    assert (cfg.train.lr_g, cfg.loss.name, cfg.model.pack) == (2.5e-4, "hinge", 2)
    assert cfg.train.epochs == 5 and cfg.data.source == "grid"
    # one report per epoch carries the metric and a checkpoint (ASHA / PBT time unit)
    assert cfg.train.checkpoint_every_epochs == 1 and cfg.train.sample_every_epochs == 1
    assert cfg.eval.every_images == 0 and cfg.ray.num_to_keep >= 2
    assert sweep.base.train.lr_g == 1e-3  # the base is untouched by a trial
    assert sweep.num_trials() == 3 * 2  # num_samples x the model.pack grid


def test_the_shipped_sweeps_parse():
    for name in ("sweep_grid_asha.yaml", "sweep_grid_pbt.yaml"):
        sweep = load_sweep(str(REPO / "tune_configs" / name))
        assert sweep.metric == "kl" and sweep.space


@pytest.mark.parametrize("space, key, words", [
    ({"train.lr_gg": {"uniform": [0, 1]}}, "search_space.train.lr_gg", "did you mean 'train.lr_g'"),
    ({"lr": {"uniform": [0, 1]}}, "search_space.lr", "not a config key"),
    ({"loss.name": {"choice": []}}, "search_space.loss.name", "non-empty list"),
    ({"loss.name": {"choice": ["hinge", "bogus"]}}, "search_space.loss.name", "'bogus'"),
    ({"train.lr_g": {"loguniform": [0, 1e-3]}}, "search_space.train.lr_g", "low > 0"),
    ({"train.lr_g": {"uniform": [1e-3, 1e-4]}}, "search_space.train.lr_g", "low < high"),
    ({"train.lr_g": {"normal": [0, 1]}}, "search_space.train.lr_g", "loguniform"),
    ({"data.num_samples": {"grid": [10, 20]}}, "search_space.data.num_samples", "shared by every trial"),
    ({"model.depth": {"grid": [0, 2]}}, "search_space.model.depth", "must be > 0"),
    ({"model.depth": {"uniform": [1, 4]}}, "search_space.model.depth", "integer key: use choice"),
    ({"train.epochs": {"grid": [2, 4]}}, "search_space.train.epochs", "max_t"),
    ({"eval.num_samples": {"grid": [100, 200]}}, "search_space.eval.num_samples", "shared"),
    ({"train.sample_every_epochs": {"grid": [1, 2]}}, "search_space.train.sample_every_epochs",
     "evaluated every epoch"),
    ({"name": {"choice": ["a", "b"]}}, "search_space.name", "named by Tune"),
])
def test_bad_search_space_names_the_key(tmp_path, space, key, words):
    e = error(tmp_path, search_space=space)
    assert e.key == key and words in str(e)


def test_metric_no_trial_reports(tmp_path):
    e = error(tmp_path, metric="fid")
    assert e.key == "metric" and "modes, high_quality, kl" in str(e)


def test_mode_follows_the_metric(tmp_path):
    assert load_sweep(write(tmp_path, mode=None)).mode == "min"  # kl: lower is better
    e = error(tmp_path, mode="max")
    assert e.key == "mode" and "'kl' is better when lower" in str(e)


@pytest.mark.parametrize("changes, key", [
    ({"scheduler": {"name": "hyperband"}}, "scheduler.name"),
    ({"scheduler": {"name": "asha", "grace": 1}}, "scheduler.grace"),
    ({"scheduler": {"name": "asha", "grace_period": "two"}}, "scheduler.grace_period"),
    ({"num_samples": 0}, "num_samples"),
    ({"mode": "up"}, "mode"),
    ({"name": "has space"}, "name"),
    ({"base": "missing.yaml"}, "base"),
    ({"metric": None}, "metric"),
    ({"trials": 3}, "trials"),
    ({"overrides": {"train.epochs": 0}}, "base.train.epochs"),
    ({"scheduler": {"name": "pbt"}}, "search_space.loss.name"),  # architecture/loss can't mutate
    ({"scheduler": {"name": "asha", "reduction_factor": 1}}, "scheduler.reduction_factor"),
    ({"scheduler": {"name": "asha", "grace_period": 50}}, "scheduler.grace_period"),
])
def test_bad_sweep_keys(tmp_path, changes, key):
    assert error(tmp_path, **changes).key == key


def test_seed_is_searchable_with_choice(tmp_path):
    sweep = load_sweep(write(tmp_path, search_space={"seed": {"grid": [0, 1, 2]}}))
    assert sweep.num_trials() == 3 * 3 and sweep.trial_config({"seed": 2}).seed == 2


def test_pbt_scheduler_ranges(tmp_path):
    space = {"train.lr_g": {"loguniform": [1e-4, 1e-3]}}
    for args, key in (({"perturbation_interval": 20}, "scheduler.perturbation_interval"),
                      ({"quantile_fraction": 0.9}, "scheduler.quantile_fraction"),
                      ({"resample_probability": 1.5}, "scheduler.resample_probability")):
        e = error(tmp_path, scheduler={"name": "pbt", **args}, search_space=space)
        assert e.key == key, e


def test_pbt_accepts_optimizer_keys_only(tmp_path):
    sweep = load_sweep(write(tmp_path, scheduler={"name": "pbt", "perturbation_interval": 2},
                             search_space={"train.lr_g": {"loguniform": [1e-4, 1e-3]},
                                           "train.n_critic": {"choice": [1, 2]}}))
    assert sweep.scheduler == "pbt" and sweep.scheduler_args["perturbation_interval"] == 2
    e = error(tmp_path, scheduler={"name": "pbt"},
              search_space={"train.lr_g": {"grid": [1e-4, 1e-3]}})
    assert e.key == "search_space" and "choice" in str(e)
