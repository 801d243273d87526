"""Class-conditional GAN: a label embedding joined with z in G, and the label fed to D either by
projection (Miyato & Koyama 2018: logit = head(h) + <embed(y), h> on D's features h) or by
concatenation with D's input (Mirza & Osindero 2014; label maps as extra channels for conv D).

Any family's G and D are wrapped; the family builds them with the widened inputs."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .layers import Discriminator, Generator


def _labels(y: Tensor) -> Tensor:
    # the range is checked once on the data (a per-step check would sync the host)
    if y.dim() != 1:
        raise ValueError(f"labels must be a 1-D tensor of class indices, got shape {tuple(y.shape)}")
    return y.long()


class ConditionalGenerator(Generator):
    """G(z, y) = base(cat(z, embed(y))); `z_dim` is the latent size the caller draws."""

    def __init__(self, base: Generator, z_dim: int, num_classes: int, cond_dim: int):
        super().__init__()
        self.base, self.z_dim, self.num_classes = base, z_dim, num_classes
        self.embed = nn.Embedding(num_classes, cond_dim)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.base(torch.cat([z, self.embed(_labels(y))], 1))


class ProjectionDiscriminator(nn.Module):
    def __init__(self, base: Discriminator, num_classes: int, features: int):
        super().__init__()
        self.base = base
        # zero: D starts as the unconditional one; each class then learns its own direction
        self.embed = nn.Embedding(num_classes, features)
        nn.init.zeros_(self.embed.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.base.features(x)
        e = self.embed(_labels(y))
        return self.base.net[-1](h).squeeze(1) + (e * h).sum(1)


class ConcatDiscriminator(nn.Module):
    """The label embedding joins the input: appended to the flattened sample (MLP), or
    broadcast to `cond_dim` constant maps appended to the image channels (conv)."""

    def __init__(self, base: Discriminator, num_classes: int, cond_dim: int, spatial: bool):
        super().__init__()
        self.base, self.spatial = base, spatial
        self.embed = nn.Embedding(num_classes, cond_dim)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        e = self.embed(_labels(y))
        if self.spatial:
            joined = torch.cat([x, e[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        else:
            joined = torch.cat([x.flatten(1), e], 1)
        return self.base(joined)


def build(family_build, m, shape: tuple[int, ...]) -> tuple[ConditionalGenerator, nn.Module]:
    """Wrap `family_build(m, shape, z_in, d_shape)`'s G and D for m.num_classes classes."""
    spatial = m.family != "mlp"
    if m.d_cond == "concat":
        d_shape = (shape[0] + m.cond_dim, *shape[1:]) if spatial else (math.prod(shape) + m.cond_dim,)
    else:
        d_shape = shape
    G, D = family_build(m, shape, m.z_dim + m.cond_dim, d_shape)
    G = ConditionalGenerator(G, m.z_dim, m.num_classes, m.cond_dim)
    if m.d_cond == "concat":
        return G, ConcatDiscriminator(D, m.num_classes, m.cond_dim, spatial)
    D.eval()  # no BatchNorm or spectral-norm state change from this probe
    with torch.no_grad():  # the width of D's features, whatever the family
        width = D.features(torch.zeros(2, *shape)).shape[1]
    D.train()
    return G, ProjectionDiscriminator(D, m.num_classes, width)
