"""Class-conditional GAN: shapes and wiring for every family and both ways D takes the label,
the config and data checks, and that a trained generator draws the class it is asked for."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from gan_core.config import ConfigError, load_config
from gan_core.data import ArrayData, check_data, load_source
from gan_core.data.transforms import preprocess_images
from gan_core.evaluation import class_rows, sample, sample_labels
from gan_core.models import build_models
from gan_core.training import GANTraining, make_optimizers

FAMILIES = {
    "mlp": ["model.family=mlp", "data.image_size=8"],
    "digit_cnn": ["model.family=digit_cnn", "data.image_size=28"],
    "dcgan": ["model.family=dcgan", "data.image_size=16"],
}
SMALL = ["model.z_dim=8", "model.g_width=16", "model.d_width=16", "model.depth=2",
         "model.num_classes=10", "model.cond_dim=4", "train.batch_size=8"]


def cfg_for(family, d_cond, *extra):
    return load_config(None, [*FAMILIES[family], *SMALL, f"model.d_cond={d_cond}", *extra])


@pytest.mark.parametrize("d_cond", ["projection", "concat"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_label_reaches_both_networks(family, d_cond):
    cfg = cfg_for(family, d_cond)
    torch.manual_seed(0)
    G, D = build_models(cfg)
    size = cfg.data.image_size
    z = G.sample_z(6, torch.Generator().manual_seed(1))
    y0, y1 = torch.zeros(6, dtype=torch.long), torch.ones(6, dtype=torch.long)
    G.eval()
    a, b = G(z, y0), G(z, y1)
    assert a.shape == (6, 1, size, size)
    assert not torch.allclose(a, b), "the label does not change G's output"
    x = torch.rand(6, 1, size, size) * 2 - 1
    if d_cond == "projection":  # starts as the unconditional D: the class embedding is zero
        assert torch.equal(D(x, y0), D(x, y1))
        assert torch.equal(D(x, y0), D.base(x))
        torch.nn.init.normal_(D.embed.weight)
    out0, out1 = D(x, y0), D(x, y1)
    assert out0.shape == (6,)
    assert not torch.allclose(out0, out1), "the label does not change D's output"


@pytest.mark.parametrize("d_cond", ["projection", "concat"])
def test_a_training_step_moves_both_embeddings(d_cond):
    cfg = cfg_for("dcgan", d_cond)
    torch.manual_seed(0)
    G, D = build_models(cfg)
    opt_g, opt_d = make_optimizers(G, D, cfg.train)
    tr = GANTraining(G, D, opt_g, opt_d, cfg.loss, 1, 100.0, 8)
    before = G.embed.weight.clone(), D.embed.weight.clone()
    gen = torch.Generator().manual_seed(2)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    out = tr.step(torch.rand(8, 1, 16, 16) * 2 - 1, gen, y)
    assert {"d_loss", "g_loss"} <= set(out)
    # only the rows of the labels in the batch get a gradient
    g_moved = (G.embed.weight != before[0]).any(1)
    d_moved = (D.embed.weight != before[1]).any(1)
    assert g_moved[:4].all() and not g_moved[4:].any()
    assert d_moved[:4].all() and not d_moved[4:].any()
    with pytest.raises(TypeError):
        tr.step(torch.rand(8, 1, 16, 16) * 2 - 1, gen)  # a conditional GAN needs the labels


def test_unconditional_models_keep_their_parameter_names():
    # checkpoints and registered generators of unconditional runs must still load
    G, D = build_models(load_config(None, ["model.family=dcgan", "data.image_size=16"]))
    assert all(k.startswith(("fc.", "body.")) for k in G.state_dict())
    assert all(k.startswith("net.") for k in D.state_dict())


def test_sampling_draws_balanced_or_given_labels():
    cfg = cfg_for("mlp", "projection")
    G, _ = build_models(cfg)
    assert sample_labels(G, 12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    labels, nrow = class_rows(G, 3)
    assert nrow == 3 and labels.tolist() == [c for c in range(10) for _ in range(3)]
    given = sample(G, 5, seed=0, labels=np.full(5, 7))
    assert np.allclose(given, sample(G, 5, seed=0, labels=[7] * 5))
    assert not np.allclose(given, sample(G, 5, seed=0, labels=np.full(5, 3)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        sample(G, 2, seed=0, labels=[0, 10])
    with pytest.raises(ValueError, match="3 samples need 3 labels"):
        sample(G, 3, seed=0, labels=[0, 1])
    unconditional, _ = build_models(load_config(None, FAMILIES["mlp"]))
    assert sample_labels(unconditional, 4) is None and class_rows(unconditional, 3) == (None, None)


@pytest.mark.parametrize("overrides, key", [
    (["data.source=grid", "model.family=mlp", "model.num_classes=10"], "model.num_classes"),
    (["model.num_classes=10", "model.pack=2"], "model.pack"),
    (["model.num_classes=10", "model.d_cond=film"], "model.d_cond"),
    (["model.num_classes=-1"], "model.num_classes"),
    (["model.num_classes=10", "model.cond_dim=0"], "model.cond_dim"),
    (["eval.metrics=cond_acc", "eval.evaluator=models:/e@champion"], "eval.metrics"),
])
def test_bad_conditional_configs_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert e.value.key == key


def test_data_must_carry_labels_in_range():
    cfg = load_config(None, ["model.num_classes=10", "train.batch_size=2", "ray.num_workers=1"])
    x = np.zeros((4, 1, 8, 8), np.float32)
    check_data(cfg, ArrayData(x, np.array([0, 9, 3, 3]), "image", "four"))
    with pytest.raises(ConfigError, match="needs labels, and the data has none") as e:
        check_data(cfg, ArrayData(x, None, "image", "four unlabelled"))
    assert e.value.key == "model.num_classes"
    with pytest.raises(ConfigError, match="labels run from 0 to 10") as e:
        check_data(cfg, ArrayData(x, np.array([0, 10, 3, 3]), "image", "four"), prefix="base.")
    assert e.value.key == "base.model.num_classes"


@pytest.mark.parametrize("d_cond", ["projection", "concat"])
def test_a_trained_generator_draws_the_class_it_is_asked_for(d_cond):
    """1,000 steps on the 1,797 bundled 8x8 digits; a logistic regression trained on the real
    digits judges the samples. Only the label changes between the rows of the test."""
    torch.set_num_threads(1)
    cfg = load_config(None, ["data.source=sklearn_digits", "data.image_size=8", "model.family=mlp",
                             "model.num_classes=10", f"model.d_cond={d_cond}", "model.z_dim=16",
                             "model.g_width=128", "model.d_width=128", "model.depth=2",
                             "model.g_norm=none", "model.d_norm=none", "train.lr_g=1e-3",
                             "train.lr_d=1e-3"])
    data = load_source(cfg.data)
    x, y = torch.as_tensor(preprocess_images(data.x, 8, 1)), torch.as_tensor(data.y)
    judge = LogisticRegression(max_iter=2000).fit(x.flatten(1).numpy(), y.numpy())
    torch.manual_seed(0)
    G, D = build_models(cfg)
    opt_g, opt_d = make_optimizers(G, D, cfg.train)
    tr = GANTraining(G, D, opt_g, opt_d, cfg.loss, 1, 5000.0, 64)
    gen = torch.Generator().manual_seed(1)
    for _ in range(1000):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        tr.step(x[idx], gen, y[idx])
    z = tr.generator.sample_z(100, torch.Generator().manual_seed(3))
    hits = []
    with torch.no_grad():
        for c in range(10):  # the same 100 latents for every class
            fake = tr.generator(z, torch.full((100,), c))
            hits.append(judge.predict(fake.flatten(1).numpy()) == c)
    per_class = np.mean(hits, axis=1)
    assert per_class.mean() >= 0.9 and per_class.min() >= 0.5, per_class
