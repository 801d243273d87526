"""InfoGAN's categorical code (model.info_codes): the latent's layout, Q's loss in both phases
against a hand computation, Q learning to read the code, and the config's refusals."""
import math

import pytest
import torch
import torch.nn.functional as F

from gan_core.build import build_training
from gan_core.config import ConfigError, load_config
from gan_core.evaluation import class_rows, sample
from gan_core.models.info import InfoDiscriminator, InfoGenerator

BATCH, CODES, NOISE = 16, 4, 8
SMALL = ["model.family=dcgan", "data.image_size=8", "data.channels=1", f"model.z_dim={NOISE}",
         "model.g_width=8", "model.d_width=8", f"train.batch_size={BATCH}",
         f"model.info_codes={CODES}"]


def make(*overrides):
    tr, _ = build_training(load_config(None, [*SMALL, *overrides]), "cpu")
    return tr


def reals(seed=100):
    return torch.rand(BATCH, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_latent_is_noise_then_a_uniform_one_hot_code():
    tr = make()
    G = tr.G
    assert isinstance(G, InfoGenerator) and isinstance(tr.D, InfoDiscriminator)
    assert G.z_dim == NOISE + CODES
    z = G.sample_z(8000, torch.Generator().manual_seed(0))
    codes = z[:, NOISE:]
    assert set(codes.unique().tolist()) == {0.0, 1.0} and torch.equal(codes.sum(1), torch.ones(8000))
    share = torch.bincount(G.code_of(z), minlength=CODES) / 8000
    assert share.min() > 0.22 and share.max() < 0.28  # 1/4 each, +-0.03 (about 5 sd)
    assert z[:, :NOISE].std() == pytest.approx(1.0, abs=0.05)
    fixed = G.sample_z(5, torch.Generator().manual_seed(0), code=3, truncation=0.5)
    assert G.code_of(fixed).tolist() == [3] * 5 and fixed[:, :NOISE].abs().max() <= 0.5
    assert G.code_of(G.sample_z(3, code=torch.tensor([2, 0, 1]))).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 4\), got 4..4"):
        G.sample_z(1, code=CODES)


def test_sample_grids_draw_a_row_per_code():
    G = make().generator
    codes, nrow = class_rows(G, 3)
    assert nrow == 3 and codes.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    rows = sample(G, len(codes), seed=0, labels=codes)
    # the same seed draws the same noise: only the code differs between the two draws
    again = sample(G, len(codes), seed=0, labels=codes[::-1].copy())
    assert rows.shape == (12, 1, 8, 8) and not (rows == again).all()
    assert (sample(G, 3, seed=0, labels=[1, 1, 1]) == sample(G, 3, seed=0, labels=[1, 1, 1])).all()
    uniform = sample(G, 3, seed=0)  # uniform codes, as in training
    assert uniform.shape == (3, 1, 8, 8)


def test_both_phases_add_q_cross_entropy_on_the_codes_drawn():
    tr = make("loss.info_weight=0.5")
    real = reals()

    def expected_info(seed):
        z = tr.G.sample_z(BATCH, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            logit, q = tr.D(tr.G(z), info=True)
        return logit, F.cross_entropy(q, z[:, NOISE:].argmax(1))

    logit, info = expected_info(5)
    out = tr._phase_g(real, torch.Generator().manual_seed(5))
    assert out["info_loss"] == pytest.approx(info.item(), rel=1e-5)
    assert out["g_loss"] == pytest.approx(tr.loss.g(logit).item(), rel=1e-5)  # the adversarial part
    q0 = [p.detach().clone() for p in tr.D.q.parameters()]
    out = tr._phase_d(real, torch.Generator().manual_seed(6))
    assert set(out) == {"d_loss", "d_real", "d_fake"}
    # D's step moved Q: it learns from the D phase's fakes
    assert all(not torch.equal(a, b) for a, b in zip(q0, tr.D.q.parameters()))


def test_q_learns_to_read_the_code():
    torch.set_num_threads(1)
    tr = make("train.lr_g=1e-3", "train.lr_d=1e-3")
    gen = torch.Generator().manual_seed(0)
    losses = [tr.step(reals(i), gen)["info_loss"].item() for i in range(80)]
    assert losses[0] > 0.8 * math.log(CODES)  # chance at the start: ln 4 = 1.39
    assert sum(losses[-10:]) / 10 < 0.25 * math.log(CODES)


def test_info_code_under_bf16_autocast():
    tr = make("train.precision=bf16", "loss.r1_gamma=1.0", "loss.r1_interval=1")
    out = tr.step(reals(), torch.Generator().manual_seed(0))
    assert {"info_loss", "r1", "d_loss", "g_loss"} <= set(out)
    assert all(torch.isfinite(v) for v in out.values())


@pytest.mark.parametrize("overrides, key, words", [
    (["model.info_codes=1"], "model.info_codes", "at least 2"),
    (["model.info_codes=-1"], "model.info_codes", ">= 0"),
    (["model.info_codes=10", "model.family=progan", "data.image_size=16"], "model.info_codes",
     "'progan'"),
    (["model.info_codes=10", "model.num_classes=10"], "model.info_codes", "labels"),
    (["model.info_codes=10", "model.pack=2"], "model.info_codes", "packed"),
    (["model.info_codes=10", "loss.info_weight=0"], "loss.info_weight", "> 0"),
])
def test_bad_info_settings_are_refused_by_key(overrides, key, words):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert e.value.key == key and words in str(e.value)
