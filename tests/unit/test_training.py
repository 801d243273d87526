"""gan_core.training / ema / checkpoint: which parameters each phase touches, the phase schedule,
every loss with the regularisers, EMA, and an exact checkpoint round trip."""
import copy
import math

import pytest
import torch

from gan_core.checkpoint import load_state, save_state
from gan_core.config import LOSS_NAMES, load_config
from gan_core.ema import ema_beta, ema_update
from gan_core.losses import r1_penalty
from gan_core.models import build_models
from gan_core.training import GANTraining, apply_optimizer_config, lr_scale, make_optimizers

BATCH = 8
SMALL = ["model.family=dcgan", "data.image_size=8", "data.channels=1", "model.z_dim=8",
         "model.g_width=8", "model.d_width=8", f"train.batch_size={BATCH}"]


def make(*overrides, seed=0, ema=0.0):
    cfg = load_config(None, [*SMALL, *overrides])
    torch.manual_seed(seed)
    G, D = build_models(cfg)
    opt_g, opt_d = make_optimizers(G, D, cfg.train)
    tr = GANTraining(G, D, opt_g, opt_d, cfg.loss, cfg.train.n_critic, ema, BATCH)
    return tr


def batches(n, seed=100):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(BATCH, 1, 8, 8, generator=gen) * 2 - 1 for _ in range(n)]


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def all_changed(a, b):
    """Every parameter tensor moved (Adam moves each one with a nonzero gradient)."""
    return all(not torch.equal(x, y) for x, y in zip(a, b))


# ---------------------------------------------------------------- which phase touches what


def test_d_phase_updates_d_only():
    tr = make()
    real = batches(1)[0]
    g0, d0 = params(tr.G), params(tr.D)
    out = tr._phase_d(real, torch.Generator().manual_seed(1))
    assert same(params(tr.G), g0)
    assert all_changed(params(tr.D), d0)
    assert all(p.grad is None for p in tr.G.parameters())
    assert tr.opt_g.state_dict()["state"] == {}
    assert set(out) == {"d_loss", "d_real", "d_fake"}


def test_g_phase_updates_g_only_and_leaves_d_grads_alone():
    tr = make()
    real = batches(1)[0]
    g0, d0 = params(tr.G), params(tr.D)
    out = tr._phase_g(real, torch.Generator().manual_seed(1))
    assert same(params(tr.D), d0)
    assert all(p.grad is None for p in tr.D.parameters())
    assert tr.opt_d.state_dict()["state"] == {}
    assert all_changed(params(tr.G), g0)
    assert set(out) == {"g_loss"}
    # D's parameters require grad again afterwards
    assert all(p.requires_grad for p in tr.D.parameters())


def test_g_phase_after_d_phase_keeps_d_and_its_grads_bit_identical():
    tr = make()
    real = batches(1)[0]
    tr._phase_d(real, torch.Generator().manual_seed(1))
    d0 = params(tr.D)
    grads0 = [p.grad.clone() for p in tr.D.parameters()]
    adam0 = [s["exp_avg"].clone() for s in tr.opt_d.state.values()]
    g0 = params(tr.G)
    tr._phase_g(real, torch.Generator().manual_seed(2))
    assert same(params(tr.D), d0)
    assert same([p.grad for p in tr.D.parameters()], grads0)  # no G-phase gradient leaked into D
    assert same([s["exp_avg"] for s in tr.opt_d.state.values()], adam0)
    assert all_changed(params(tr.G), g0)


def test_g_phase_restores_d_requires_grad_on_error():
    tr = make()

    def boom(fake):
        raise RuntimeError("boom")

    tr.loss = tr.loss._replace(g=boom)
    with pytest.raises(RuntimeError):
        tr._phase_g(batches(1)[0], None)
    assert all(p.requires_grad for p in tr.D.parameters())


def test_n_critic_2_updates_g_on_even_steps_only():
    tr = make("train.n_critic=2")
    assert [(p.name, p.interval) for p in tr.phases] == [("D", 1), ("G", 2)]
    gen = torch.Generator().manual_seed(3)
    history = []
    for real in batches(4):
        g0, d0 = params(tr.G), params(tr.D)
        out = tr.step(real, gen)
        history.append((set(out), not same(params(tr.G), g0), not same(params(tr.D), d0)))
    d_keys = {"d_loss", "d_real", "d_fake"}
    assert history == [
        (d_keys | {"g_loss"}, True, True),   # index 0: D and G
        (d_keys, False, True),               # index 1: D only
        (d_keys | {"g_loss"}, True, True),   # index 2: D and G
        (d_keys, False, True),               # index 3: D only
    ]
    assert tr.step_index == 4
    assert tr.images_seen == 4 * BATCH


@pytest.mark.parametrize("overrides, n_scores", [
    ([], BATCH),
    (["model.pack=2"], BATCH // 2),  # PacGAN: D scores pairs, so top-k keeps the best pairs
    (["model.num_classes=10", "model.cond_dim=4"], BATCH),  # each fake judged with its label
])
def test_top_k_g_loss_keeps_the_fakes_d_rates_highest_and_anneals_their_share(overrides, n_scores):
    tr = make("loss.topk=0.25", "loss.topk_half_life_images=100", *overrides)
    real = batches(1)[0]
    y = torch.arange(BATCH) % 10 if "model.num_classes=10" in overrides else None
    # images seen -> scores kept: all at the start, half after one half-life, never below 1/4
    for images_seen, kept in ((0, n_scores), (100, n_scores // 2), (10_000, n_scores // 4)):
        tr.images_seen = images_seen
        with torch.no_grad():
            scores = tr._judge(tr._fake(BATCH, y, torch.Generator().manual_seed(5), "cpu")[0], y)
        assert scores.numel() == n_scores
        scores = scores.flatten()
        top = scores.sort(descending=True).values[:kept]
        expected = tr.loss.g(top)
        if kept < n_scores:  # the lowest-rated share would give another loss
            assert not torch.isclose(expected, tr.loss.g(scores.sort().values[:kept]))
        out = tr._phase_g(real, torch.Generator().manual_seed(5), y)
        assert torch.allclose(out["g_loss"], expected, atol=1e-6), images_seen


def test_step_metrics_are_detached_tensors():
    tr = make()
    out = tr.step(batches(1)[0], torch.Generator().manual_seed(0))
    for v in out.values():
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad


# ---------------------------------------------------------------- losses and regularisers


@pytest.mark.parametrize("reg", ["none", "gp", "r1"])
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_every_loss_and_regulariser_gives_finite_metrics(loss, reg):
    extra = {"none": [], "gp": ["loss.gp_weight=10"],
             "r1": ["loss.r1_gamma=1.0", "loss.r1_interval=2"]}[reg]
    tr = make(f"loss.name={loss}", *extra)
    gen = torch.Generator().manual_seed(0)
    keys = []
    for real in batches(3):
        d0 = params(tr.D)
        out = tr.step(real, gen)
        assert not same(params(tr.D), d0)
        assert all(math.isfinite(v.item()) for v in out.values()), out
        keys.append(set(out))
    base = {"d_loss", "d_real", "d_fake", "g_loss"}
    if reg == "gp":
        assert keys == [base | {"gp"}] * 3
        assert all(math.isfinite(p.abs().sum().item()) for p in tr.D.parameters())
    elif reg == "r1":
        assert keys == [base | {"r1"}, base, base | {"r1"}]  # lazy: steps 0 and 2
    else:
        assert keys == [base] * 3
    if loss in ("minimax", "nonsaturating"):
        assert 0 <= out["d_real"].item() <= 1 and 0 <= out["d_fake"].item() <= 1


def test_d_metrics_are_probabilities_for_bce_and_raw_scores_otherwise():
    for name, expect in [("nonsaturating", torch.sigmoid), ("wgan", lambda t: t)]:
        tr = make(f"loss.name={name}")
        real = batches(1)[0]
        tr.D.eval()  # fixed BN statistics so the logits can be recomputed
        gen = torch.Generator().manual_seed(5)
        with torch.no_grad():
            real_logits = tr.D(real)
        out = tr._phase_d(real, gen)
        torch.testing.assert_close(out["d_real"], expect(real_logits).mean())


@pytest.mark.parametrize("size", [8, 16])
def test_r1_phase_applies_the_lazy_scaled_penalty(size):
    tr = make("loss.r1_gamma=2.0", "loss.r1_interval=4", f"data.image_size={size}")
    assert [(p.name, p.interval) for p in tr.phases] == [("D", 1), ("D_reg", 4), ("G", 1)]
    real = torch.rand(BATCH, 1, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    D_copy = copy.deepcopy(tr.D)
    x = real.clone().requires_grad_(True)
    expected_r1 = r1_penalty(D_copy(x), x)
    expected = torch.autograd.grad(expected_r1 * (2.0 / 2) * 4, list(D_copy.parameters()),
                                   allow_unused=True)
    g0 = params(tr.G)
    out = tr._phase_d_reg(real, None)
    assert set(out) == {"r1"}
    torch.testing.assert_close(out["r1"], expected_r1.detach())
    assert out["r1"].item() > 0
    assert same(params(tr.G), g0)
    # every D parameter gets a gradient (zero where R1 does not depend on it, e.g. the last bias):
    # under DDP a parameter without one leaves its bucket un-reduced and the ranks diverge
    unused = 0
    for p, e in zip(tr.D.parameters(), expected):
        assert p.grad is not None
        if e is None:
            unused += 1
            assert torch.equal(p.grad, torch.zeros_like(p))
        else:
            torch.testing.assert_close(p.grad, e)
    assert unused >= 1  # the final Linear bias


def test_gp_changes_the_d_update():
    real = batches(1)[0]
    res = []
    for w in (0, 10):
        tr = make("loss.name=wgan", f"loss.gp_weight={w}")
        torch.manual_seed(9)
        tr._phase_d(real, torch.Generator().manual_seed(1))
        res.append(params(tr.D))
    assert not same(*res)


# ---------------------------------------------------------------- EMA


def test_ema_beta_half_life():
    assert ema_beta(100, 100) == 0.5
    assert ema_beta(50, 100) == pytest.approx(math.sqrt(0.5))
    assert ema_beta(64, 10_000) ** (10_000 / 64) == pytest.approx(0.5)
    assert ema_beta(64, 0) == 0.0


def test_ema_update_extremes_and_midpoint():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    bn_a, bn_b = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    bn_b.running_mean.fill_(3.0)
    ema, model = torch.nn.Sequential(a, bn_a), torch.nn.Sequential(b, bn_b)
    before = params(ema)
    ema_update(ema, model, 1.0)  # beta 1: keep
    assert same(params(ema), before)
    ema_update(ema, model, 0.5)
    for e, old, m in zip(ema.parameters(), before, model.parameters()):
        torch.testing.assert_close(e.detach(), (old + m.detach()) / 2)
    ema_update(ema, model, 0.0)  # beta 0: copy
    assert same(params(ema), params(model))
    assert torch.equal(bn_a.running_mean, bn_b.running_mean)  # buffers are copied


def test_g_ema_moves_toward_g_after_a_g_step():
    tr = make(ema=2 * BATCH)  # beta = 0.5 ** (8 / 16)
    beta = tr.ema_beta
    assert beta == pytest.approx(0.5**0.5)
    assert tr.G_ema is not tr.G and same(params(tr.G_ema), params(tr.G))
    assert not tr.G_ema.training
    assert all(not p.requires_grad for p in tr.G_ema.parameters())
    assert tr.generator is tr.G_ema
    g_old = params(tr.G)
    tr._phase_g(batches(1)[0], torch.Generator().manual_seed(0))
    g_new, e_new = params(tr.G), params(tr.G_ema)
    for old, new, e in zip(g_old, g_new, e_new):
        torch.testing.assert_close(e, old + (1 - beta) * (new - old))
    dist_before = sum((o - n).pow(2).sum() for o, n in zip(g_old, g_new))
    dist_after = sum((e - n).pow(2).sum() for e, n in zip(e_new, g_new))
    assert 0 < dist_after < dist_before
    # a D step leaves G_ema alone
    tr._phase_d(batches(1)[0], None)
    assert same(params(tr.G_ema), e_new)


def test_no_ema_without_half_life():
    tr = make(ema=0.0)
    assert tr.G_ema is None and tr.generator is tr.G
    assert tr.state_dict()["G_ema"] is None


# ---------------------------------------------------------------- checkpoints


def _opt_equal(a: dict, b: dict) -> bool:
    if a["param_groups"] != b["param_groups"] or a["state"].keys() != b["state"].keys():
        return False
    return all(torch.equal(a["state"][k][n], b["state"][k][n])
               for k in a["state"] for n in a["state"][k])


@pytest.mark.parametrize("overrides", [
    ["loss.gp_weight=10", "train.n_critic=2"],  # gp draws from the global RNG
    ["loss.r1_gamma=1.0", "loss.r1_interval=2"],
])
def test_exact_checkpoint_round_trip(tmp_path, overrides):
    data = batches(5)
    A = make(*overrides, seed=0, ema=4 * BATCH)
    gen_a = torch.Generator().manual_seed(11)
    torch.manual_seed(1234)
    for real in data[:3]:
        A.step(real, gen_a)
    save_state(tmp_path, {"training": A.state_dict(), "rng": torch.get_rng_state(),
                          "z_gen": gen_a.get_state()})
    losses_a = [{k: v.item() for k, v in A.step(real, gen_a).items()} for real in data[3:]]
    final_a = A.state_dict()

    torch.manual_seed(999)  # scramble the global RNG
    B = make(*overrides, seed=1, ema=4 * BATCH)  # a different init
    assert not same(params(B.G), params(make(*overrides, seed=0).G))
    state = load_state(tmp_path)
    B.load_state_dict(state["training"])
    torch.set_rng_state(state["rng"])
    gen_b = torch.Generator()
    gen_b.set_state(state["z_gen"])
    assert B.step_index == 3 and B.images_seen == 3 * BATCH
    losses_b = [{k: v.item() for k, v in B.step(real, gen_b).items()} for real in data[3:]]
    final_b = B.state_dict()

    assert losses_b == losses_a
    assert set(losses_a[0]) != set(losses_a[1])  # the two replayed steps ran different phases
    for name in ("G", "D", "G_ema"):
        sa, sb = final_a[name], final_b[name]
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    assert _opt_equal(final_a["opt_g"], final_b["opt_g"])
    assert _opt_equal(final_a["opt_d"], final_b["opt_d"])
    assert final_b["step_index"] == 5 and final_b["images_seen"] == 5 * BATCH


def test_pbt_exploit_restores_donor_state_with_the_mutated_optimizer_config(tmp_path):
    """What a PBT exploit does to a trial: the donor's full state, the trial's own lr/betas."""
    donor = make(seed=0, ema=4 * BATCH)
    gen = torch.Generator().manual_seed(3)
    for real in batches(3):
        donor.step(real, gen)
    save_state(tmp_path, {"training": donor.state_dict()})

    mutated = load_config(None, [*SMALL, "train.lr_g=3.3e-5", "train.lr_d=7e-4", "train.beta1=0.1"])
    trial = make("train.lr_g=3.3e-5", "train.lr_d=7e-4", "train.beta1=0.1", seed=1, ema=4 * BATCH)
    trial.load_state_dict(load_state(tmp_path)["training"])
    apply_optimizer_config(trial.opt_g, trial.opt_d, mutated.train)

    want, got = donor.state_dict(), trial.state_dict()
    for name in ("G", "D", "G_ema"):
        assert all(torch.equal(want[name][k], got[name][k]) for k in want[name]), name
    for opt in ("opt_g", "opt_d"):  # Adam moments and step counts come from the donor
        assert all(torch.equal(a, b) for sa, sb in zip(want[opt]["state"].values(),
                                                      got[opt]["state"].values())
                   for a, b in zip(sa.values(), sb.values()))
    assert got["images_seen"] == 3 * BATCH and got["step_index"] == 3
    assert [g["lr"] for g in trial.opt_g.param_groups] == [3.3e-5]
    assert [g["lr"] for g in trial.opt_d.param_groups] == [7e-4]
    assert trial.opt_g.param_groups[0]["betas"] == (0.1, mutated.train.beta2)
    assert donor.opt_g.param_groups[0]["lr"] != 3.3e-5  # the donor's own rate was different


def test_checkpoint_without_matching_rng_diverges(tmp_path):
    """Control for the round trip: the z generator state matters, so the test above can fail."""
    data = batches(4)
    A = make(seed=0)
    gen = torch.Generator().manual_seed(11)
    A.step(data[0], gen)
    save_state(tmp_path, {"training": A.state_dict()})
    la = A.step(data[1], gen)["g_loss"].item()
    B = make(seed=1)
    B.load_state_dict(load_state(tmp_path)["training"])
    lb = B.step(data[1], torch.Generator().manual_seed(11))["g_loss"].item()
    assert la != lb


def test_save_state_writes_atomically(tmp_path):
    path = save_state(tmp_path / "sub", {"x": torch.arange(3)})
    assert path == tmp_path / "sub" / "state.pt"
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.pt"]
    assert torch.equal(load_state(path.parent)["x"], torch.arange(3))


def test_load_state_of_garbage_names_the_file(tmp_path):
    f = tmp_path / "state.pt"
    f.write_bytes(b"\x00garbage\xff" * 20)
    with pytest.raises(ValueError) as info:
        load_state(tmp_path)
    assert str(f) in str(info.value)


def test_load_state_of_truncated_file(tmp_path):
    path = save_state(tmp_path, {"w": torch.randn(100)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        load_state(tmp_path)


def test_load_state_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_state(tmp_path)


class Payload:
    """A custom class: unpickling it would run arbitrary code paths; weights_only must refuse."""

    def __init__(self):
        self.value = 42


def test_load_state_refuses_pickled_objects(tmp_path):
    f = tmp_path / "state.pt"
    torch.save({"training": Payload()}, f)
    # the file is a valid torch pickle: a full (unsafe) load would succeed
    assert torch.load(f, weights_only=False)["training"].value == 42
    with pytest.raises(ValueError) as info:
        load_state(tmp_path)
    assert str(f) in str(info.value)



def test_ema_switched_on_at_resume_starts_from_the_trained_generator():
    from gan_core.config import load_config
    from gan_core.models import build_models
    from gan_core.training import GANTraining, make_optimizers

    def trainer(half_life, seed):
        cfg = load_config(None, ["data.source=grid", "model.family=mlp", "model.g_width=8",
                                 "model.d_width=8", f"train.ema_half_life_images={half_life}"])
        torch.manual_seed(seed)
        G, D = build_models(cfg)
        return GANTraining(G, D, *make_optimizers(G, D, cfg.train), cfg.loss, 1, half_life, 8)

    without = trainer(0, seed=1)
    state = without.state_dict()
    assert state["G_ema"] is None
    resumed = trainer(100, seed=2)
    resumed.load_state_dict(state)
    for a, b in zip(resumed.G_ema.parameters(), without.G.parameters()):
        assert torch.equal(a, b)


def test_ema_half_life_counts_images_per_generator_update():
    from gan_core.config import LossConfig
    from gan_core.training import GANTraining

    G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    opts = torch.optim.SGD(G.parameters(), 0.1), torch.optim.SGD(D.parameters(), 0.1)
    # G updates every 5th step of 20 images: 100 images per EMA update, a half-life of 100
    tr = GANTraining(G, D, *opts, LossConfig(), n_critic=5, ema_half_life_images=100, global_batch=20)
    assert tr.ema_beta == pytest.approx(0.5)


def test_lr_decay_is_constant_then_linear_to_zero_over_the_final_share():
    total = 1000
    assert lr_scale(0, total, 0.0) == lr_scale(999, total, 0.0) == 1.0  # off
    assert lr_scale(0, total, 0.5) == lr_scale(500, total, 0.5) == 1.0
    assert lr_scale(750, total, 0.5) == pytest.approx(0.5)
    assert lr_scale(900, total, 0.5) == pytest.approx(0.2)
    assert lr_scale(total, total, 0.5) == 0.0 and lr_scale(total + 64, total, 0.5) == 0.0
    assert lr_scale(250, total, 1.0) == pytest.approx(0.75)


def test_scaled_optimizer_config_keeps_the_ratio_of_the_two_rates():
    cfg = load_config(None, [*SMALL, "train.lr_g=1e-4", "train.lr_d=4e-4"])
    tr = make("train.lr_g=1e-4", "train.lr_d=4e-4")
    apply_optimizer_config(tr.opt_g, tr.opt_d, cfg.train, 0.25)
    assert tr.opt_g.param_groups[0]["lr"] == pytest.approx(2.5e-5)
    assert tr.opt_d.param_groups[0]["lr"] == pytest.approx(1e-4)
    apply_optimizer_config(tr.opt_g, tr.opt_d, cfg.train)  # back to the config's rates
    assert tr.opt_g.param_groups[0]["lr"] == 1e-4
