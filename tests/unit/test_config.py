"""gan_core.config: defaults <- YAML <- key=value overrides, and validation naming the dotted key."""
import pytest
import yaml

from gan_core.config import (DATA_SOURCES, LOSS_NAMES, MODEL_FAMILIES, Config, ConfigError,
                             from_dict, load_config, parse_override)
from tests.conftest import MNIST_DIR, REPO


def _error(overrides=(), path=None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    return info.value


def test_defaults_validate_and_match_the_dataclasses():
    cfg = load_config(None, [])
    assert isinstance(cfg, Config)
    assert cfg == Config()
    assert cfg.data.source == "sklearn_digits"
    assert cfg.model.family == "dcgan"
    assert cfg.loss.name == "nonsaturating"
    assert cfg.train.lr_g == 2e-4 and isinstance(cfg.train.lr_g, float)
    assert cfg.train.batch_size == 64
    assert cfg.ray.use_gpu is False


def test_yaml_file_overrides_defaults_and_cli_overrides_yaml(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text(
        "name: my-run\n"
        "seed: 7\n"
        "data:\n  source: ring\n  num_samples: 1000\n"
        "model:\n  family: mlp\n  g_width: 32\n"
        "train:\n  lr_g: 1e-3\n  batch_size: 128\n  epochs: 3\n"
    )
    cfg = load_config(str(p), ["train.batch_size=16", "model.d_width=8"])
    assert cfg.name == "my-run"
    assert cfg.seed == 7
    assert cfg.data.source == "ring" and cfg.data.num_samples == 1000
    assert cfg.model.family == "mlp" and cfg.model.g_width == 32 and cfg.model.d_width == 8
    assert cfg.train.lr_g == pytest.approx(1e-3) and isinstance(cfg.train.lr_g, float)
    assert cfg.train.batch_size == 16  # the override wins over the file
    assert cfg.train.epochs == 3
    # untouched keys keep their defaults
    assert cfg.train.lr_d == 2e-4 and cfg.model.z_dim == 100


def test_empty_yaml_file_gives_defaults(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("# nothing here\n")
    assert load_config(str(p), []) == Config()


def test_overrides_parse_yaml_scalars():
    cfg = load_config(None, [
        "train.batch_size=32",        # int
        "train.beta1=0.25",           # float
        "ray.use_gpu=true",           # bool
        "data.label_column=null",     # Optional -> None
        "train.lr_d=1e-3",            # YAML 1.1: a string, coerced for a float field
        "train.lr_g=5E-5",
        "ray.cpus_per_worker=2",      # an int for a float field becomes a float
        "train.epochs=4.0",           # an integral float for an int field becomes an int
        "mlflow.experiment=exp-1",
        "name=  spaced-name",
    ])
    assert cfg.train.batch_size == 32 and type(cfg.train.batch_size) is int
    assert cfg.train.beta1 == 0.25
    assert cfg.ray.use_gpu is True
    assert cfg.data.label_column is None
    assert cfg.train.lr_d == 0.001 and type(cfg.train.lr_d) is float
    assert cfg.train.lr_g == 5e-5 and type(cfg.train.lr_g) is float
    assert cfg.ray.cpus_per_worker == 2.0 and type(cfg.ray.cpus_per_worker) is float
    assert cfg.train.epochs == 4 and type(cfg.train.epochs) is int
    assert cfg.mlflow.experiment == "exp-1"
    assert cfg.name == "spaced-name"


def test_parse_override_values():
    assert parse_override("train.lr_g=1e-3") == ("train.lr_g", "1e-3")  # a string until coerced
    assert parse_override(" a.b = 3") == ("a.b", 3)
    assert parse_override("a=false") == ("a", False)
    assert parse_override("a=") == ("a", None)
    assert parse_override("a=x=y") == ("a", "x=y")
    with pytest.raises(ConfigError) as info:
        parse_override("train.lr_g")
    assert "key=value" in str(info.value)


def test_unknown_key_names_the_dotted_key_and_suggests_the_close_match():
    e = _error(["train.lrg=0.1"])
    assert e.key == "train.lrg"
    assert "'train.lrg'" in str(e)
    assert "train.lr_g" in str(e)  # the suggestion
    e = _error(["modle.family=mlp"])
    assert e.key == "modle" and "'model'" in str(e)
    e = _error(["train.zzzzzz=1"])
    assert e.key == "train.zzzzzz" and "did you mean" not in str(e)


def test_unknown_key_in_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("loss:\n  r1_gama: 1.0\n")
    e = _error(path=str(p))
    assert e.key == "loss.r1_gama" and "loss.r1_gamma" in str(e)


@pytest.mark.parametrize("override,key", [
    ("train.batch_size=abc", "train.batch_size"),
    ("train.epochs=1.5", "train.epochs"),
    ("ray.use_gpu=maybe", "ray.use_gpu"),
    ("ray.use_gpu=1", "ray.use_gpu"),
    ("train.lr_g=fast", "train.lr_g"),
    ("train.lr_g=true", "train.lr_g"),
    ("train.lr_g=.inf", "train.lr_g"),
    ("train.batch_size=true", "train.batch_size"),
    ("train.batch_size=null", "train.batch_size"),
    ("model.family=3", "model.family"),
    ("train=5", "train"),
])
def test_wrong_type_names_the_key(override, key):
    e = _error([override])
    assert e.key == key
    assert str(e).startswith(f"config key '{key}'")


@pytest.mark.parametrize("override,key,choices", [
    ("model.family=resnet", "model.family", MODEL_FAMILIES),
    ("loss.name=nope", "loss.name", LOSS_NAMES),
    ("data.source=cifar", "data.source", DATA_SOURCES),
])
def test_unknown_choice_lists_the_choices(override, key, choices):
    e = _error([override])
    assert e.key == key
    for c in choices:
        assert c in str(e)


@pytest.mark.parametrize("family", ["dcgan", "digit_cnn"])
def test_toy_source_needs_the_mlp_family(family):
    e = _error(["data.source=grid", f"model.family={family}"])
    assert e.key == "model.family"
    assert "mlp" in str(e)
    # and the mlp family is fine
    cfg = load_config(None, ["data.source=grid", "model.family=mlp"])
    assert cfg.data.source == "grid"


def test_path_sources_need_a_path():
    e = _error(["data.source=mnist"])
    assert e.key == "data.path"


def test_missing_path_is_rejected_unless_check_paths_is_false(tmp_path):
    missing = str(tmp_path / "nowhere")
    e = _error(["data.source=mnist", f"data.path={missing}"])
    assert e.key == "data.path" and missing in str(e)
    cfg = from_dict({"data": {"source": "mnist", "path": missing}}, check_paths=False)
    assert cfg.data.path == missing
    # an existing path is accepted with checks on
    cfg = load_config(None, ["data.source=mnist", f"data.path={tmp_path}"])
    assert cfg.data.path == str(tmp_path)


def test_missing_config_file_names_it(tmp_path):
    e = _error(path=str(tmp_path / "nope.yaml"))
    assert e.key == "--config" and "nope.yaml" in str(e)


def test_top_level_list_is_rejected(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    e = _error(path=str(p))
    assert e.key == "--config" and str(p) in str(e)


def test_invalid_yaml_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train: {lr_g: [1, 2\nmodel: :\n")
    e = _error(path=str(p))
    assert e.key == "--config"
    assert str(p) in str(e)


def test_section_must_be_a_mapping(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train: 3\n")
    assert _error(path=str(p)).key == "train"


def test_flat_has_dotted_keys():
    flat = load_config(None, ["train.lr_g=1e-3"]).flat()
    assert flat["train.lr_g"] == 0.001
    assert flat["model.family"] == "dcgan"
    assert flat["name"] == "dcgan-digits"
    assert flat["seed"] == 0
    assert "train" not in flat and "model" not in flat
    sections = {k.split(".")[0] for k in flat if "." in k}
    assert sections == {"data", "model", "loss", "train", "eval", "progressive", "ray", "mlflow"}
    assert all(not isinstance(v, dict) for v in flat.values())
    assert len(flat) == 2 + sum(len(v) for v in Config().to_dict().values() if isinstance(v, dict))


@pytest.mark.parametrize("override,key", [
    ("train.lr_g=-1e-3", "train.lr_g"),
    ("train.lr_d=0", "train.lr_d"),
    ("train.batch_size=0", "train.batch_size"),
    ("loss.gp_weight=-1", "loss.gp_weight"),
    ("train.beta1=1.0", "train.beta1"),
    ("train.lr_decay=1.5", "train.lr_decay"),
    ("train.lr_decay=-0.1", "train.lr_decay"),
    ("data.channels=2", "data.channels"),
    ("name=a/b", "name"),
    ("model.fc_width=-1", "model.fc_width"),
    ("loss.topk=1.0", "loss.topk"),
    ("loss.topk=-0.5", "loss.topk"),
])
def test_out_of_range_values_name_the_key(override, key):
    assert _error([override]).key == key


def test_top_k_needs_a_positive_half_life_and_a_z_driven_generator():
    assert _error(["loss.topk=0.5", "loss.topk_half_life_images=0"]).key == "loss.topk_half_life_images"
    e = _error(["loss.topk=0.5", "model.family=srgan", "data.image_size=32"])
    assert e.key == "loss.topk" and "srgan" in str(e)


def test_fc_width_is_refused_outside_dcgan():
    e = _error(["model.family=digit_cnn", "data.image_size=28", "model.fc_width=64"])
    assert e.key == "model.fc_width" and "digit_cnn" in str(e)


def test_model_specific_image_sizes():
    assert _error(["model.family=digit_cnn", "data.image_size=16"]).key == "data.image_size"
    assert _error(["model.family=dcgan", "data.image_size=10"]).key == "data.image_size"
    assert _error(["model.family=dcgan", "data.image_size=4"]).key == "data.image_size"
    assert load_config(None, ["model.family=dcgan", "data.image_size=28"]).data.image_size == 28


def test_gp_and_r1_are_exclusive():
    e = _error(["loss.gp_weight=10", "loss.r1_gamma=1"])
    assert e.key == "loss.r1_gamma"


def test_integer_choices_are_listed_in_the_message():
    # regression: the choice list of an int-valued key once raised TypeError instead of ConfigError
    e = _error(["data.channels=2"])
    assert e.key == "data.channels"
    assert "1, 3" in str(e)


def test_numeric_value_for_a_string_key_becomes_a_string():
    assert load_config(None, ["mlflow.experiment=2024"]).mlflow.experiment == "2024"
    with pytest.raises(ConfigError, match="mlflow.experiment"):
        load_config(None, ["mlflow.experiment=true"])


def test_eval_metrics_list_and_champion_metric_are_checked():
    cfg = load_config(None, ["eval.metrics=fid,pr", "eval.evaluator=models:/ev@champion",
                             "mlflow.metric=recall"])
    assert cfg.eval.metrics == ["fid", "pr"] and cfg.mlflow.metric == "recall"
    with pytest.raises(ConfigError, match="eval.metrics.*bogus"):
        load_config(None, ["eval.metrics=fid,bogus", "eval.evaluator=x"])
    with pytest.raises(ConfigError, match="eval.evaluator"):
        load_config(None, ["eval.metrics=kid"])
    assert load_config(None, ["eval.metrics=swd"]).eval.evaluator is None  # weight-free
    with pytest.raises(ConfigError, match="mlflow.metric.*'fid'.*reports: swd"):
        load_config(None, ["eval.metrics=swd", "mlflow.metric=fid"])
    with pytest.raises(ConfigError, match="mlflow.metric.*modes, high_quality, kl"):
        load_config(None, ["data.source=grid", "model.family=mlp", "mlflow.metric=w1"])
    with pytest.raises(ConfigError, match="eval.metrics.*toys"):
        load_config(None, ["data.source=grid", "model.family=mlp", "eval.metrics=swd"])
    with pytest.raises(ConfigError, match="eval.metrics"):
        load_config(None, ["eval.metrics={a: 1}"])


EV = "eval.evaluator=models:/ev@champion"


@pytest.mark.parametrize("overrides, metric, mode", [
    (["eval.metrics=is,fid", EV], "fid", "min"),  # FID heads IS whatever the order
    (["eval.metrics=is,pr", EV], "is", "max"),
    (["eval.metrics=pr", EV], None, None),  # no headline figure: the newest run wins
    ([f"data.path={MNIST_DIR}", "data.source=stacked_mnist", "data.channels=3", "eval.metrics=modes", EV],
     "kl", "min"),
    (["data.source=grid", "model.family=mlp"], "kl", "min"),
    (["eval.metrics=fid,is", EV, "mlflow.metric=is"], "is", "max"),  # named: its own direction
    # IS's parts: the classes' spread improves upwards, the samples' ambiguity downwards
    (["eval.metrics=is", EV, "mlflow.metric=is_class_entropy"], "is_class_entropy", "max"),
    (["eval.metrics=is", EV, "mlflow.metric=is_sample_entropy"], "is_sample_entropy", "min"),
    (["eval.metrics=fid", EV, "mlflow.metric=fid", "mlflow.mode=min"], "fid", "min"),
])
def test_champion_metric_and_direction_default_to_the_runs_headline(overrides, metric, mode):
    m = load_config(None, overrides).mlflow
    assert (m.metric, m.mode) == (metric, mode)


def test_a_champion_mode_against_the_metrics_direction_is_refused():
    # kl with mode max would crown the run furthest from uniform
    e = _error(["data.source=grid", "model.family=mlp", "mlflow.metric=kl", "mlflow.mode=max"])
    assert e.key == "mlflow.mode" and "'kl' is better when lower" in str(e) and "min" in str(e)
    e = _error(["eval.metrics=is", EV, "mlflow.metric=is", "mlflow.mode=min"])
    assert e.key == "mlflow.mode" and "higher" in str(e)
    assert _error(["mlflow.mode=up"]).key == "mlflow.mode"


def test_a_saved_config_from_before_the_headline_rule_still_loads():
    # saved configs carry mlflow.mode "max" with no metric; the headline decides both
    cfg = from_dict({"eval": {"metrics": ["fid"], "evaluator": "models:/ev/1"},
                     "mlflow": {"metric": None, "mode": "max"}}, check_paths=False)
    assert (cfg.mlflow.metric, cfg.mlflow.mode) == ("fid", "min")
    again = from_dict(cfg.to_dict(), check_paths=False)  # what a worker rebuilds
    assert (again.mlflow.metric, again.mlflow.mode) == ("fid", "min")


@pytest.mark.parametrize("override, key", [
    ("name=it's", "name"), ("name=../up", "name"), ("seed=-1", "seed"), ("seed=99999999999", "seed"),
])
def test_names_and_seeds_that_would_break_paths_or_rngs(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(None, [override])


def test_stacked_mnist_takes_only_per_channel_metrics(tmp_path):
    base = ["data.source=stacked_mnist", f"data.path={tmp_path}", "data.channels=3",
            "data.image_size=28", "eval.evaluator=models:/e@champion"]
    assert load_config(None, base + ["eval.metrics=modes,swd"]).eval.metrics == ["modes", "swd"]
    with pytest.raises(ConfigError, match="eval.metrics.*per channel"):
        load_config(None, base + ["eval.metrics=modes,fid"])


@pytest.mark.parametrize("path", sorted(p.name for p in (REPO / "tune_configs").glob("*.yaml")
                                        if not p.name.startswith("sweep_")))
def test_every_shipped_run_config_is_valid(path):
    # data paths point at ../shared or the user's own files: only the keys are checked here
    values = yaml.safe_load((REPO / "tune_configs" / path).read_text())
    cfg = from_dict(values, check_paths=False)
    assert cfg.name == values["name"]
