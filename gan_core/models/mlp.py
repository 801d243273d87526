"""Vanilla GAN: MLP generator and discriminator, for the 1-D/2-D toys (and flattened images)."""
from __future__ import annotations

import math

from torch import Tensor, nn

from .layers import Discriminator, Generator, maybe_spectral, norm1d


def _mlp(sizes: list[int], act: nn.Module, norm: str, sn: str) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [maybe_spectral(nn.Linear(a, b), sn), norm1d(norm, b), act]
    return layers


class MLPGenerator(Generator):
    def __init__(self, z_dim: int, out_shape: tuple[int, ...], width: int, depth: int, norm: str):
        super().__init__()
        self.z_dim, self.out_shape = z_dim, tuple(out_shape)
        out = math.prod(out_shape)
        body = _mlp([z_dim] + [width] * depth, nn.ReLU(), norm, "none")
        head: list[nn.Module] = [nn.Linear(width, out)]
        if len(out_shape) > 1:  # images live in [-1, 1]; toy points are unbounded
            head.append(nn.Tanh())
        self.net = nn.Sequential(*body, *head)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(Discriminator):
    """pack > 1 (PacGAN): D judges `pack` samples jointly, N inputs give N/pack logits."""

    def __init__(self, in_shape: tuple[int, ...], width: int, depth: int, norm: str, pack: int = 1):
        super().__init__()
        if pack < 1:
            raise ValueError(f"pack must be >= 1, got {pack}")
        self.pack = pack
        # BatchNorm in a toy D couples samples in a batch; only spectral norm is honoured here.
        body = _mlp([math.prod(in_shape) * pack] + [width] * depth, nn.LeakyReLU(0.2), "none", norm)
        self.net = nn.Sequential(*body, nn.Linear(width, 1))

    def prepare(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        if x.shape[0] % self.pack:
            raise ValueError(f"a batch of {x.shape[0]} samples is not divisible by the PacGAN "
                             f"pack={self.pack}")
        # consecutive samples (0..pack-1), (pack..2*pack-1), ... are concatenated
        return x.reshape(x.shape[0] // self.pack, self.pack * x.shape[1])


def build(m, shape: tuple[int, ...], z_in: int, d_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    return (MLPGenerator(z_in, shape, m.g_width, m.depth, m.g_norm),
            MLPDiscriminator(d_shape, m.d_width, m.depth, m.d_norm, m.pack))
