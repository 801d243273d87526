"""Fuzzed configs: any values of any type under real or made-up keys either make a valid Config or
fail with one ConfigError that names a dotted key, never another exception from deep inside."""
import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gan_core.config import Config, ConfigError, from_dict
from gan_core.sweep import load_sweep

KEYS = [f"{section.name}.{f.name}" for section in dataclasses.fields(Config)
        if dataclasses.is_dataclass(section.default_factory if section.default_factory
                                    is not dataclasses.MISSING else None)
        for f in dataclasses.fields(section.default_factory)] + ["name", "seed"]
ALL_KEYS = set(KEYS)

scalars = (st.none() | st.booleans() | st.integers(-2**40, 2**40)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["mnist", "grid", "dcgan", "mlp", "wgan", "fid", "cond_acc",
                              "projection", "1e-3", "batch", "spectral", "models:/e@champion"]))
values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=5), scalars, max_size=2)
keys = st.sampled_from(KEYS) | st.text(min_size=1, max_size=10) | st.sampled_from(
    ["model.nope", "train", "data.source.x", "ray.num_workers.y"])


def _nest(pairs) -> dict:
    out: dict = {}
    for key, value in pairs:
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        node[leaf] = value
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(keys, values), min_size=1, max_size=4))
def test_any_config_is_valid_or_one_config_error(pairs):
    try:
        cfg = from_dict(_nest(pairs), check_paths=False)
    except ConfigError as e:
        assert str(e).startswith(f"config key '{e.key}': ")
        root = e.key.split(".")[0]
        assert e.key in ALL_KEYS or root in {k.split(".")[0] for k, _ in pairs} or e.key == "", e
    else:
        assert isinstance(cfg, Config)
        assert cfg.train.batch_size > 0 and cfg.model.num_classes >= 0


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["name", "base", "overrides", "metric", "mode",
                                        "num_samples", "search_space", "scheduler", "bogus"]),
                       values, max_size=5))
def test_any_sweep_file_is_valid_or_one_config_error(tmp_path_factory, raw):
    import yaml

    path = tmp_path_factory.mktemp("sweep") / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    try:
        load_sweep(str(path))
    except ConfigError as e:
        assert str(e).startswith(f"config key '{e.key}': ")
