"""data.clusters (a self-conditioned GAN): cluster labels for unlabelled images, the config's
refusals, the G counting the clusters it trains on, and sampling them by their shares; each
channel clustered apart (data.cluster_channels)."""
import dataclasses

import numpy as np
import pytest
import torch

from gan_core.config import ConfigError, load_config
from gan_core.data import DataError, load_source
import gan_core.data.clusters as clusters
from gan_core.data.clusters import cluster_labels
from gan_core.data.transforms import preprocess_images
from gan_core.evaluation import class_rows, sample, sample_labels
from gan_core.models import build_models
from gan_core.models.conditional import LabelEmbedding
from gan_core.training import GANTraining, make_optimizers
from pipelines.gan_model import GeneratorModel
from tests.conftest import MNIST_DIR

CLUSTERED = ["data.source=sklearn_digits", "data.image_size=8", "model.family=mlp",
             "data.clusters=12", "model.num_classes=12", "model.z_dim=8", "model.g_width=16",
             "model.d_width=16", "model.depth=2", "model.cond_dim=4", "train.batch_size=16"]


def test_clusters_follow_the_digits_and_repeat():
    data = load_source(load_config(None, CLUSTERED).data, seed=3)
    classes = load_source(load_config(None, ["data.source=sklearn_digits"]).data).y
    assert data.y.dtype == np.int64 and set(data.y) == set(range(12))
    assert "12 spectral clusters" in data.description
    # most of each cluster is one digit: the labels carry the classes without being them
    assert _purity(data.y, classes) > 0.85
    assert not np.array_equal(data.y, classes)
    assert np.array_equal(data.y, load_source(load_config(None, CLUSTERED).data, seed=3).y)


def _purity(labels: np.ndarray, classes: np.ndarray) -> float:
    return sum(np.bincount(classes[labels == c]).max() for c in np.unique(labels)) / len(classes)


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"{MNIST_DIR} not present")
def test_clusters_follow_the_digit_manifolds_of_real_mnist():
    # k-means on the pixels' PCA puts 77-79% of these 3,000 digits in a cluster of their own class
    # (seeds 0-3); the spectral embedding of the neighbour graph 85%
    data = load_source(load_config(None, ["data.source=mnist", f"data.path={MNIST_DIR}"]).data)
    x, classes = data.x[:3000], data.y[:3000]
    assert _purity(cluster_labels(x, 50, seed=0), classes) > 0.83


def test_images_beyond_the_fitted_ones_take_their_nearest_ones_cluster(monkeypatch):
    data = load_source(load_config(None, ["data.source=sklearn_digits"]).data)
    monkeypatch.setattr(clusters, "_FIT_MAX", 900)
    labels = cluster_labels(data.x, 10, seed=1)
    assert labels.shape == (len(data.x),) and set(labels) == set(range(10))
    fit = np.random.default_rng(1).permutation(len(data.x))[:900]
    rest = np.setdiff1d(np.arange(len(data.x)), fit)
    flat = data.x.reshape(len(data.x), -1)
    # nearest by the pixels' PCA; the raw pixels name the same neighbour for most digits
    d = ((flat[rest, None, :] - flat[None, fit, :]) ** 2).sum(-1)
    agree = (labels[rest] == labels[fit][d.argmin(1)]).mean()
    assert agree > 0.9, agree
    # the rest are labelled about as well as the fitted ones (at random: about 0.2)
    fitted, extended = _purity(labels[fit], data.y[fit]), _purity(labels[rest], data.y[rest])
    assert extended > fitted - 0.1 and extended > 0.6, (fitted, extended)
    assert np.array_equal(labels, cluster_labels(data.x, 10, seed=1))


def test_too_few_images_for_the_clusters():
    with pytest.raises(DataError, match="data.clusters: 5 clusters need at least 5 images"):
        cluster_labels(np.zeros((4, 1, 8, 8), np.float32), 5, seed=0)


@pytest.mark.parametrize("overrides, key", [
    (["data.clusters=1", "model.num_classes=1"], "data.clusters"),
    (["data.clusters=-2"], "data.clusters"),
    (["data.clusters=10"], "model.num_classes"),
    (["data.clusters=10", "model.num_classes=12"], "model.num_classes"),
    (["data.source=grid", "model.family=mlp", "data.clusters=10", "model.num_classes=10"],
     "data.clusters"),
    (["data.clusters=10", "model.num_classes=10", "data.captions_per_image=2"], "data.clusters"),
    (["data.clusters=10", "model.num_classes=10", "eval.metrics=[cond_acc]",
      "eval.evaluator=models:/e@champion"], "eval.metrics"),
])
def test_bad_cluster_configs_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert e.value.key == key


def _trained(steps: int):
    cfg = load_config(None, CLUSTERED)
    data = load_source(cfg.data, seed=cfg.seed)
    x, y = torch.as_tensor(preprocess_images(data.x, 8, 1)), torch.as_tensor(data.y)
    torch.manual_seed(0)
    G, D = build_models(cfg)
    opt_g, opt_d = make_optimizers(G, D, cfg.train)
    tr = GANTraining(G, D, opt_g, opt_d, cfg.loss, 1, 1000.0, 16)
    gen, fed = torch.Generator().manual_seed(1), []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (16,), generator=gen)
        tr.step(x[idx], gen, y[idx])
        fed.append(y[idx])
    return tr, torch.cat(fed), data


def test_the_generator_counts_the_clusters_it_trains_on():
    tr, fed, _ = _trained(20)
    want = torch.bincount(fed, minlength=12)
    assert torch.equal(tr.G.label_counts, want)
    assert torch.equal(tr.generator.label_counts, want)  # the EMA copy samples with them
    assert "label_counts" in tr.generator.state_dict()  # saved with the weights
    plain, _ = build_models(load_config(None, [c for c in CLUSTERED if not c.startswith("data.clusters")]))
    assert not hasattr(plain, "label_counts")  # class-conditional models load as before


def test_samples_draw_clusters_by_their_shares():
    G, _ = build_models(load_config(None, CLUSTERED))
    assert sample_labels(G, 24).tolist() == list(range(12)) * 2  # nothing counted: balanced
    G.count(torch.tensor([2] * 6 + [5] * 2))
    assert sample_labels(G, 8).tolist() == [2] * 6 + [5] * 2
    assert class_rows(G, 4) == (None, None)  # grids look like an unconditional G's
    assert sample(G, 8, seed=0).shape == (8, 1, 8, 8)
    # the registered model's extra normal entry picks the clusters in the same shares
    picked = G.cluster_of(torch.randn(40_000, generator=torch.Generator().manual_seed(0)))
    assert set(picked.tolist()) == {2, 5}
    assert abs((picked == 2).float().mean().item() - 0.75) < 0.01


def test_the_registered_model_samples_without_labels():
    tr, _, data = _trained(5)
    model = GeneratorModel()
    model.cfg, model.G = load_config(None, CLUSTERED), tr.generator
    z = np.random.default_rng(0).standard_normal((6, 9)).astype(np.float32)
    out = model.predict(None, z)
    assert out.shape == (6, 1, 8, 8)
    picked = tr.generator.cluster_of(torch.as_tensor(z[:, -1]))
    with torch.no_grad():
        want = tr.generator(torch.as_tensor(z[:, :-1]), picked).numpy()
    assert np.allclose(out, want)
    with pytest.raises(ValueError, match=r"\(n, 9\) latent vectors"):
        model.predict(None, z[:, :8])


STACKED = ["data.source=stacked_mnist", f"data.path={MNIST_DIR}", "data.channels=3",
           "data.image_size=28", "data.num_samples=1000", "data.clusters=20",
           "data.cluster_channels=true", "model.num_classes=8000"]


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"{MNIST_DIR} not present")
def test_each_channel_of_stacked_mnist_is_clustered_apart():
    cfg = load_config(None, STACKED)
    digits = load_source(dataclasses.replace(cfg.data, clusters=0), seed=2).y  # 100 R + 10 G + B
    data = load_source(cfg.data, seed=2)
    assert "20 spectral clusters per channel" in data.description
    assert data.y.min() >= 0 and data.y.max() < 8000
    parts = np.stack([data.y // 400, data.y // 20 % 20, data.y % 20], 1)
    for c, place in enumerate((100, 10, 1)):
        # one clustering for all channels: a cluster is mostly one digit in every channel
        assert _purity(parts[:, c], digits // place % 10) > 0.75
    # the whole image's cluster would blend the channels; a channel's cluster ignores the others
    flat = data.x.reshape(3000, 1, 28, 28)
    assert np.array_equal(parts.reshape(-1), cluster_labels(flat, 20, seed=2))


def test_a_joined_label_embeds_as_the_sum_of_its_parts():
    emb = LabelEmbedding(125, 6, factors=3)  # 5 values per part
    assert emb.num_classes == 125 and emb.weight.shape == (15, 6)
    y = torch.tensor([0, 124, 3 * 25 + 1 * 5 + 4])
    w = emb.weight.detach()
    want = torch.stack([w[0] + w[5] + w[10], w[4] + w[9] + w[14], w[3] + w[6] + w[14]])
    assert torch.allclose(emb(y), want)
    # one part changed moves the embedding by that part's rows alone
    moved = emb(torch.tensor([2 * 25 + 3]))[0] - emb(torch.tensor([3]))[0]
    assert torch.allclose(moved, w[2] - w[0])
    with pytest.raises(ValueError, match="120 labels are not 3 parts of equal size"):
        LabelEmbedding(120, 6, factors=3)


def test_a_stacked_generator_and_discriminator_embed_each_channel():
    cfg = load_config(None, STACKED + ["model.cond_dim=4", "model.g_width=8", "model.d_width=8",
                                       "model.d_cond=projection"])
    G, D = build_models(cfg)
    assert G.num_classes == 8000 and G.label_counts.shape == (8000,)
    assert G.embed.weight.shape == (60, 4) and D.embed.weight.shape[0] == 60
    assert not D.embed.weight.any()  # projection starts as the unconditional D
    x = G(torch.randn(2, cfg.model.z_dim), torch.tensor([0, 7999]))
    assert x.shape == (2, 3, 28, 28) and D(x, torch.tensor([0, 7999])).shape == (2,)


@pytest.mark.parametrize("overrides, key, message", [
    (["data.cluster_channels=true"], "data.cluster_channels", "set data.clusters > 0"),
    (["data.clusters=10", "model.num_classes=10", "data.cluster_channels=true"],
     "data.cluster_channels", "the images have 1"),
    (STACKED[:-1] + ["model.num_classes=20"], "model.num_classes", "set 8000, got 20"),
])
def test_bad_channel_cluster_configs_name_the_key(overrides, key, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_config(None, overrides)
    assert e.value.key == key
