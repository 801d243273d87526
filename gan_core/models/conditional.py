"""Conditional GAN: a condition encoder's embedding joined with z in G, and the condition fed to D
either by projection (Miyato & Koyama 2018: logit = head(h) + <embed(y), h> on D's features h) or
by concatenation with D's input (Mirza & Osindero 2014; embedding maps as extra channels for
conv D).

The condition y is a class label ((N,) int64, `LabelEmbedding`) or a caption ((N, L) int64
tokens, `TextEncoder`, GAN-CLS); G and D each own their encoder. Every wrapper's forward takes an
optional `mix=(y2, beta)` (GAN-INT: the embedding beta*embed(y) + (1-beta)*embed(y2)); it is a
forward argument because DistributedDataParallel hooks only forward.

Any family's G and D are wrapped; the family builds them with the widened inputs."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..text import TextEncoder
from .layers import Discriminator, Generator

Mix = tuple[Tensor, float]


class LabelEmbedding(nn.Embedding):
    """Class labels (N,) -> (N, dim). With `factors` f > 1 a label joins f parts, each of k
    values (label = sum_i part_i * k^(f-1-i), data.cluster_channels: a cluster per channel), and
    its embedding is the sum of each part's own: num_classes = k^f labels share f * k rows."""

    def __init__(self, num_classes: int, dim: int, factors: int = 1):
        k = round(num_classes ** (1 / factors))
        if k ** factors != num_classes:
            raise ValueError(f"{num_classes} labels are not {factors} parts of equal size")
        super().__init__(k * factors, dim)
        self.num_classes, self.factors = num_classes, factors
        # part i of label y is y // k^(f-1-i) % k, looked up at row i * k + part
        self.register_buffer("place", k ** torch.arange(factors - 1, -1, -1), persistent=False)
        self.register_buffer("offset", k * torch.arange(factors), persistent=False)

    def forward(self, y: Tensor) -> Tensor:
        # the range is checked once on the data (a per-step check would sync the host)
        if y.dim() != 1:
            raise ValueError(f"labels must be a 1-D tensor of class indices, got shape {tuple(y.shape)}")
        if self.factors == 1:
            return super().forward(y.long())
        k = self.num_embeddings // self.factors
        rows = y.long()[:, None] // self.place % k + self.offset
        return super().forward(rows).sum(1)


def encoder(m, dim: int, factors: int = 1) -> nn.Module:
    """The condition encoder for model config m, with embeddings of width dim; `factors`: see
    LabelEmbedding."""
    return TextEncoder(dim, m.text_dim) if m.text_max_len else LabelEmbedding(m.num_classes, dim, factors)


def embed_condition(embed: nn.Module, y: Tensor, mix: Mix | None) -> Tensor:
    e = embed(y)
    if mix is None:
        return e
    y2, beta = mix
    return beta * e + (1 - beta) * embed(y2)


class ConditionalGenerator(Generator):
    """G(z, y) = base(cat(z, embed(y))); `z_dim` is the latent size the caller draws.

    `count_labels` (labels that are k-means clusters, data.clusters): the G keeps `label_counts`,
    how often training fed it each label (`count`), so that samplers draw clusters as often as
    the data holds them; it is saved with the weights. The registered model reads the cluster
    from an extra normal entry at the end of z (`cluster_of`): it samples like an unconditional
    G."""

    def __init__(self, base: Generator, z_dim: int, embed: nn.Module, count_labels: bool = False):
        super().__init__()
        self.base, self.z_dim, self.embed = base, z_dim, embed
        # samplers draw balanced labels for a class-conditional G; 0 for a text-conditional one
        self.num_classes = embed.num_classes if isinstance(embed, LabelEmbedding) else 0
        if count_labels:
            self.register_buffer("label_counts", torch.zeros(self.num_classes, dtype=torch.long))

    @torch.no_grad()
    def count(self, y: Tensor) -> None:
        self.label_counts += torch.bincount(y, minlength=self.num_classes)

    def cluster_of(self, u: Tensor) -> Tensor:
        """The cluster each standard-normal draw u (N,) picks: the one whose share of the
        training data holds Phi(u), so N(0, 1) draws pick each cluster as often as the data."""
        shares = self.label_counts.double() / self.label_counts.sum().clamp(min=1)
        at = torch.searchsorted(shares.cumsum(0), torch.special.ndtr(u.double()), right=True)
        return at.clamp(max=self.num_classes - 1)

    def forward(self, z: Tensor, y: Tensor, mix: Mix | None = None) -> Tensor:
        return self.base(torch.cat([z, embed_condition(self.embed, y, mix)], 1))


class ProjectionDiscriminator(nn.Module):
    def __init__(self, base: Discriminator, embed: nn.Module):
        super().__init__()
        self.base, self.embed = base, embed
        # zero output: D starts as the unconditional one; each condition then learns its direction
        last = embed.out if isinstance(embed, TextEncoder) else embed
        nn.init.zeros_(last.weight)
        if getattr(last, "bias", None) is not None:
            nn.init.zeros_(last.bias)

    def forward(self, x: Tensor, y: Tensor, mix: Mix | None = None) -> Tensor:
        h = self.base.features(x)
        e = embed_condition(self.embed, y, mix)
        return self.base.net[-1](h).squeeze(1) + (e * h).sum(1)


class ConcatDiscriminator(nn.Module):
    """The condition embedding joins the input: appended to the flattened sample (MLP), or
    broadcast to `cond_dim` constant maps appended to the image channels (conv)."""

    def __init__(self, base: Discriminator, embed: nn.Module, spatial: bool):
        super().__init__()
        self.base, self.embed, self.spatial = base, embed, spatial

    def forward(self, x: Tensor, y: Tensor, mix: Mix | None = None) -> Tensor:
        e = embed_condition(self.embed, y, mix)
        if self.spatial:
            joined = torch.cat([x, e[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        else:
            joined = torch.cat([x.flatten(1), e], 1)
        return self.base(joined)


def build(family_build, m, shape: tuple[int, ...], count_labels: bool = False,
          label_factors: int = 1) -> tuple[ConditionalGenerator, nn.Module]:
    """Wrap `family_build(m, shape, z_in, d_shape)`'s G and D for m's condition (classes or text);
    `count_labels`: see ConditionalGenerator; `label_factors`: see LabelEmbedding."""
    spatial = m.family != "mlp"
    if m.d_cond == "concat":
        d_shape = (shape[0] + m.cond_dim, *shape[1:]) if spatial else (math.prod(shape) + m.cond_dim,)
    else:
        d_shape = shape
    G, D = family_build(m, shape, m.z_dim + m.cond_dim, d_shape)
    if m.d_cond == "concat":
        D = ConcatDiscriminator(D, encoder(m, m.cond_dim, label_factors), spatial)
    else:
        D = ProjectionDiscriminator(D, encoder(m, D.feature_width(shape), label_factors))
    if m.text_max_len:
        g_embed = FollowedTextEncoder(D.embed, m.cond_dim)
    else:
        g_embed = encoder(m, m.cond_dim, label_factors)
    return ConditionalGenerator(G, m.z_dim, g_embed, count_labels), D


class FollowedTextEncoder(nn.Module):
    """G's caption embedding: a frozen copy of D's text encoder (`follow` refreshes it after each
    D step) and G's own projection to `dim`. Trained through G's adversarial loss alone, a text
    encoder in G collapsed G to one image for every caption and z (DCGAN on digits); D's
    matching-aware loss teaches its encoder what tells captions apart, as the pre-trained
    encoder of the original GAN-CLS did."""

    def __init__(self, d_encoder: TextEncoder, dim: int):
        super().__init__()
        self.encoder = copy.deepcopy(d_encoder)
        for p in self.encoder.parameters():  # only D's loss trains it; G gets the copy
            p.requires_grad_(False)
        self.proj = nn.Linear(d_encoder.out.out_features, dim)

    @torch.no_grad()
    def follow(self, d_encoder: TextEncoder) -> None:
        for mine, theirs in zip(self.encoder.parameters(), d_encoder.parameters()):
            mine.copy_(theirs)

    def forward(self, tokens: Tensor) -> Tensor:
        return F.leaky_relu(self.proj(self.encoder(tokens)), 0.2)
