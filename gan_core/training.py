"""The alternating GAN update as a list of phases over given modules and optimizers.

A step runs each phase whose interval divides the step index: D every step, the lazy R1
regulariser every `r1_interval` steps, G every `n_critic` steps. G and D may be wrapped in
DistributedDataParallel (separately); the G phase keeps D's gradients out of the all-reduce.

A conditional GAN's condition y (class labels or caption tokens) comes with the real batch; the
fakes are drawn for it. GAN-CLS (Reed et al. 2016) adds a mismatched-condition term to D's loss
(`mismatch_weight`) and G's loss on interpolated conditions (GAN-INT, `interp_weight`); the
"wrong" or partner condition of sample i is that of sample i-1 in the batch.

With InfoGAN's code (model.info_codes), D's Q head reads the code back from each fake, and both
D's loss (on the D phase's fakes) and G's add `info_weight` times its cross-entropy.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .augment import diff_augment
from .config import LossConfig
from .ema import ema_beta, ema_update
from .losses import drift_penalty, get_loss, gradient_penalty, mode_seeking_penalty, r1_penalty
from .models.conditional import FollowedTextEncoder

BCE_LOSSES = ("minimax", "nonsaturating")


@dataclass(frozen=True)
class Phase:
    name: str  # "D", "D_reg" or "G"
    interval: int  # runs on steps where step % interval == 0


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (or the module itself)."""
    return getattr(module, "module", module)


def requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def no_sync(module: nn.Module):
    return module.no_sync() if hasattr(module, "no_sync") else contextlib.nullcontext()


class GANTraining:
    """Holds G, D, G_ema and their optimizers; `step` runs the phases due at a step index."""

    def __init__(self, G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, loss: LossConfig, n_critic: int = 1,
                 ema_half_life_images: float = 0.0, global_batch: int = 1,
                 autocast: torch.dtype | None = None):
        self.G, self.D, self.opt_g, self.opt_d = G, D, opt_g, opt_d
        self.autocast = autocast  # e.g. torch.bfloat16: G's and D's forwards in autocast
        self.loss_cfg = loss
        self.loss = get_loss(loss.name)
        self.G_ema = copy.deepcopy(unwrap(G)).eval() if ema_half_life_images > 0 else None
        if self.G_ema is not None:
            requires_grad(self.G_ema, False)
        # G (and so the EMA) updates once per n_critic steps
        self.ema_beta = ema_beta(global_batch * n_critic, ema_half_life_images)
        self.global_batch = global_batch
        self.phases = [Phase("D", 1)]
        if loss.r1_gamma > 0:
            self.phases.append(Phase("D_reg", loss.r1_interval))
        self.phases.append(Phase("G", n_critic))
        self.step_index = 0
        self.images_seen = 0
        self.info_codes = getattr(unwrap(G), "codes", 0)
        self.counts_labels = hasattr(unwrap(G), "label_counts")  # data.clusters: the clusters' shares

    @property
    def generator(self) -> nn.Module:
        """The generator to sample from: the EMA copy when there is one."""
        return self.G_ema if self.G_ema is not None else unwrap(self.G)

    def _fake(self, n: int, y: Tensor | None, gen: torch.Generator | None, device,
              mix: tuple[Tensor, float] | None = None) -> tuple[Tensor, Tensor]:
        """(fakes, the latents they were drawn from)."""
        z = unwrap(self.G).sample_z(n, gen, device)
        return (self._net(self.G, z) if y is None else self._net(self.G, z, y, mix)), z

    def _judge(self, x: Tensor, y: Tensor | None, mix: tuple[Tensor, float] | None = None,
               info: bool = False):
        """D's scores of x; with `info` (InfoGAN's code on), (scores, Q's code logits)."""
        if self.loss_cfg.diffaugment:  # every D input, real or fake, in every phase
            x = diff_augment(x, self.loss_cfg.diffaugment)
        if info:
            return self._net(self.D, x, info=True)
        return self._net(self.D, x) if y is None else self._net(self.D, x, y, mix)

    def _judge_fakes(self, fake: Tensor, y: Tensor | None, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """D's scores of fakes drawn from z, and with InfoGAN's code on, Q's cross-entropy
        against the codes they were drawn with (else None)."""
        if not self.info_codes:
            return self._judge(fake, y), None
        scores, q = self._judge(fake, y, info=True)
        return scores, F.cross_entropy(q, unwrap(self.G).code_of(z))

    def _net(self, net: nn.Module, *args, **kwargs):
        """net(*args), under autocast when asked; the output back in fp32, so losses, penalties
        and D's inputs mixed from reals and fakes are computed in fp32."""
        if self.autocast is None:
            return net(*args, **kwargs)
        with torch.autocast(args[0].device.type, dtype=self.autocast):
            out = net(*args, **kwargs)
        return tuple(t.float() for t in out) if isinstance(out, tuple) else out.float()

    def step(self, real: Tensor, z_gen: torch.Generator | None = None,
             y: Tensor | None = None) -> dict[str, Tensor]:
        """One step on a batch of real samples (and, for a conditional GAN, their conditions y:
        (N,) labels or (N, L) caption tokens; the fakes are drawn for the same y); returns
        detached metric tensors (no host sync)."""
        out: dict[str, Tensor] = {}
        if self.counts_labels:
            unwrap(self.G).count(y)
        for phase in self.phases:
            if self.step_index % phase.interval == 0:
                out.update(getattr(self, f"_phase_{phase.name.lower()}")(real, z_gen, y))
        self.step_index += 1
        self.images_seen += self.global_batch
        return out

    def _phase_d(self, real: Tensor, z_gen, y: Tensor | None = None) -> dict[str, Tensor]:
        with torch.no_grad():
            fake, z = self._fake(real.shape[0], y, z_gen, real.device)
        self.opt_d.zero_grad(set_to_none=True)
        real_logits = self._judge(real, y)
        fake_logits, info = self._judge_fakes(fake, y, z)
        loss = self.loss.d(real_logits, fake_logits)
        scores = {"d_real": real_logits, "d_fake": fake_logits}
        w = self.loss_cfg.mismatch_weight
        if w > 0:  # matching-aware D: a real image with another sample's condition is fake too
            scores["d_wrong"] = self._judge(real, y.roll(1, 0))
            loss = (1 - w) * loss + w * self.loss.d(real_logits, scores["d_wrong"])
        out = {"d_loss": loss.detach()}
        if info is not None:  # Q (and D's shared layers) learn to read the code
            loss = loss + self.loss_cfg.info_weight * info
        if self.loss_cfg.gp_weight > 0:
            gp = gradient_penalty(lambda x: self._judge(x, y), real, fake)
            loss = loss + self.loss_cfg.gp_weight * gp
            out["gp"] = gp.detach()
        if self.loss_cfg.drift > 0:
            drift = drift_penalty(real_logits)
            loss = loss + self.loss_cfg.drift * drift
            out["drift"] = drift.detach()
        loss.backward()
        self.opt_d.step()
        self._follow_d_text_encoder()
        out.update(self._d_outputs(scores))
        return out

    def _follow_d_text_encoder(self) -> None:
        """A text-conditional G embeds captions with a copy of D's encoder: refresh it."""
        embed = getattr(unwrap(self.G), "embed", None)
        if isinstance(embed, FollowedTextEncoder):
            embed.follow(unwrap(self.D).embed)

    def _d_outputs(self, scores: dict[str, Tensor]) -> dict[str, Tensor]:
        """D's mean output per name: a probability for the BCE losses, the raw score otherwise."""
        f = torch.sigmoid if self.loss_cfg.name in BCE_LOSSES else (lambda t: t)
        return {name: f(logits.detach()).mean() for name, logits in scores.items()}

    def _phase_d_reg(self, real: Tensor, z_gen, y: Tensor | None = None) -> dict[str, Tensor]:
        real = real.detach().requires_grad_(True)
        if self.info_codes:  # Q's logits join the zero term below
            real_logits, q = self._judge(real, y, info=True)
        else:
            real_logits = q = self._judge(real, y)
        penalty = r1_penalty(real_logits, real)
        self.opt_d.zero_grad(set_to_none=True)
        # lazy regularisation: scale by the interval so the expected gradient is unchanged.
        # `0 * logits` gives every D parameter a (zero) gradient: R1 does not depend on e.g. the
        # last layer's bias, and under DDP a parameter without a gradient leaves its bucket
        # un-reduced (ranks silently diverge) and makes the next forward raise.
        reg = penalty * (self.loss_cfg.r1_gamma / 2) * self.loss_cfg.r1_interval
        (reg + 0 * real_logits.sum() + 0 * q.sum()).backward()
        self.opt_d.step()
        self._follow_d_text_encoder()
        return {"r1": penalty.detach()}

    def _phase_g(self, real: Tensor, z_gen, y: Tensor | None = None) -> dict[str, Tensor]:
        requires_grad(self.D, False)
        try:
            self.opt_g.zero_grad(set_to_none=True)
            seek = self.loss_cfg.mode_seeking > 0 and real.shape[0] >= 2
            if seek and y is not None:  # pairs (i, i + N/2) share a condition
                h = real.shape[0] // 2
                y = torch.cat([y[:h], y[:h], y[2 * h:]])
            fake, z = self._fake(real.shape[0], y, z_gen, real.device)
            with no_sync(self.D):  # D gets no gradient here: nothing to all-reduce
                scores, info = self._judge_fakes(fake, y, z)
                loss = self.loss.g(self._top_k(scores))
                if self.loss_cfg.interp_weight > 0:  # GAN-INT: halfway between two conditions
                    mix = (y.roll(1, 0), 0.5)
                    between, _ = self._fake(real.shape[0], y, z_gen, real.device, mix)
                    loss = loss + self.loss_cfg.interp_weight * self.loss.g(self._judge(between, y, mix))
            out = {"g_loss": loss.detach()}
            if seek:
                ms = mode_seeking_penalty(fake, z)
                loss = loss + self.loss_cfg.mode_seeking * ms
                out["mode_seeking"] = ms.detach()
            if info is not None:  # G draws samples whose code Q can read
                loss = loss + self.loss_cfg.info_weight * info
                out["info_loss"] = info.detach()
            loss.backward()
            self.opt_g.step()
        finally:
            requires_grad(self.D, True)
        if self.G_ema is not None:
            ema_update(self.G_ema, unwrap(self.G), self.ema_beta)
        return out

    def _top_k(self, scores: Tensor) -> Tensor:
        """The fakes' D outputs G learns from: all, or (loss.topk) the highest share, which
        falls from 1 by half every topk_half_life_images to loss.topk. Per rank, on its own batch."""
        nu = self.loss_cfg.topk
        if not nu:
            return scores
        share = max(nu, 0.5 ** (self.images_seen / self.loss_cfg.topk_half_life_images))
        scores = scores.flatten()
        return scores.topk(max(1, round(share * scores.numel()))).values

    def state_dict(self) -> dict:
        return {
            "G": unwrap(self.G).state_dict(),
            "D": unwrap(self.D).state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "step_index": self.step_index,
            "images_seen": self.images_seen,
        }

    def load_state_dict(self, state: dict) -> None:
        unwrap(self.G).load_state_dict(state["G"])
        unwrap(self.D).load_state_dict(state["D"])
        if self.G_ema is not None:  # EMA switched on at resume: start it from the trained G
            self.G_ema.load_state_dict(state["G_ema"] if state["G_ema"] is not None else state["G"])
        load_optimizer(self.opt_g, state["opt_g"])
        load_optimizer(self.opt_d, state["opt_d"])
        self.step_index = state["step_index"]
        self.images_seen = state["images_seen"]


def apply_optimizer_config(opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                           train, scale: float = 1.0) -> None:
    """Write the config's learning rates (times `scale`) and Adam betas into the optimizers:
    a restored checkpoint carries the old ones, and the config wins (a PBT mutation, or a changed
    resume)."""
    betas = (train.beta1, train.beta2)
    for opt, lr in ((opt_g, train.lr_g), (opt_d, train.lr_d)):
        for group in opt.param_groups:
            group["lr"], group["betas"] = lr * scale, betas


def lr_scale(images_seen: int, total_images: int, decay: float) -> float:
    """The learning rates' factor after `images_seen` of a run of `total_images`: 1, then linear
    to 0 over the final `decay` share. A function of images seen, so a resumed run continues the
    same schedule."""
    if decay <= 0 or total_images <= 0:
        return 1.0
    return min(1.0, max(0.0, (total_images - images_seen) / (decay * total_images)))


def load_optimizer(opt: torch.optim.Optimizer, state: dict) -> None:
    """The checkpoint's moments and steps with this run's kernels: a checkpoint written with
    (or without) fused Adam resumes with what this run's device and config chose."""
    kernels = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in opt.param_groups]
    groups = [{**saved, **mine} for saved, mine in zip(state["param_groups"], kernels)]
    opt.load_state_dict({**state, "param_groups": groups})


def make_optimizers(G: nn.Module, D: nn.Module, train,
                    fused: bool = False) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    betas = (train.beta1, train.beta2)
    fused = fused or None  # None: torch's default (foreach on CUDA, a loop on CPU)
    return (torch.optim.Adam(G.parameters(), lr=train.lr_g, betas=betas, fused=fused),
            torch.optim.Adam(D.parameters(), lr=train.lr_d, betas=betas, fused=fused))
