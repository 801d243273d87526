"""GAN losses as pure functions of discriminator logits (never Sigmoid + BCELoss: unsafe under
autocast). Each family is a pair (d_loss(real, fake), g_loss(fake)); regularisers take D itself."""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


class LossPair(NamedTuple):
    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[[Tensor], Tensor]


def _bce_d(real: Tensor, fake: Tensor) -> Tensor:
    # -log sigmoid(real) - log(1 - sigmoid(fake)), written with softplus for stability
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_g(fake: Tensor) -> Tensor:
    """The saturating loss of the original minimax game: G minimises log(1 - D(G(z)))."""
    return -F.softplus(fake).mean()


def nonsaturating_g(fake: Tensor) -> Tensor:
    """The practical default: G maximises log D(G(z))."""
    return F.softplus(-fake).mean()


def wgan_d(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def wgan_g(fake: Tensor) -> Tensor:
    return -fake.mean()


def hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g(fake: Tensor) -> Tensor:
    return 0.5 * ((fake - 1) ** 2).mean()


LOSSES: dict[str, LossPair] = {
    "minimax": LossPair(_bce_d, minimax_g),
    "nonsaturating": LossPair(_bce_d, nonsaturating_g),
    "wgan": LossPair(wgan_d, wgan_g),
    "hinge": LossPair(hinge_d, wgan_g),  # hinge G loss is the WGAN one
    "lsgan": LossPair(lsgan_d, lsgan_g),
}


def get_loss(name: str) -> LossPair:
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
    return LOSSES[name]


def _grad_norm_sq(outputs: Tensor, inputs: Tensor) -> Tensor:
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    # one norm per D output: with PacGAN packing an output judges `pack` samples jointly
    return grad.pow(2).reshape(outputs.shape[0], -1).sum(1)


def gradient_penalty(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP: (||grad D(x_hat)|| - 1)^2 on random interpolates of real and fake."""
    eps = torch.rand([real.shape[0]] + [1] * (real.dim() - 1), device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    return ((_grad_norm_sq(D(x_hat), x_hat) + 1e-12).sqrt() - 1).pow(2).mean()


def drift_penalty(real_logits: Tensor) -> Tensor:
    """ProGAN's epsilon drift: E[D(x)^2] on reals, so a WGAN critic's output stays near zero."""
    return real_logits.pow(2).mean()


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """R1: E ||grad D(x)||^2 on real data; `real` must require grad before D(real) is computed."""
    return _grad_norm_sq(real_logits, real).mean()


def mode_seeking_penalty(fake: Tensor, z: Tensor) -> Tensor:
    """MSGAN (Mao et al. 2019): 1 / (how far apart the two halves' samples are per unit of
    distance between their latents). G minimising it cannot map different z to one image: against
    a conditional G that draws few images per condition (pair i with i + N/2, same condition)."""
    h = fake.shape[0] // 2
    ratio = (fake[:h] - fake[h:2 * h]).abs().mean() / (z[:h] - z[h:2 * h]).abs().mean()
    return 1 / (ratio + 1e-5)
