"""InfoGAN's categorical code (Chen et al. 2016), unsupervised: G's latent is z joined with a
one-hot code of `codes` values drawn uniformly, and a head Q on D's features learns to read the
code back from G's samples; G and D both minimise Q's cross-entropy (a lower bound on the mutual
information of code and sample). Without labels, the code can come to pick a class of the data
(on MNIST in the paper, mostly the digit), so that G need not spread one Gaussian over
disconnected classes. On our MNIST DCGAN at 300k images it did not make the samples less
ambiguous (docs/benchmarks.md).

Any family whose D exposes `features` (mlp, dcgan) is wrapped; the family builds G with the
widened input."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..speedups import host_to_device
from .layers import Discriminator, Generator, truncate


class InfoGenerator(Generator):
    """G(z) = base(z) with z = cat(noise (noise_dim), one-hot code (codes)): `z_dim` is the whole
    latent's width, as for every G; `sample_z` draws noise and a uniform code."""

    def __init__(self, base: Generator, noise_dim: int, codes: int):
        super().__init__()
        self.base, self.noise_dim, self.codes = base, noise_dim, codes
        self.z_dim = noise_dim + codes

    def sample_z(self, n: int, generator: torch.Generator | None = None, device=None,
                 truncation: float | None = None, code: int | Tensor | None = None) -> Tensor:
        """`code`: one code for every sample, or (n,) codes, instead of uniform ones.
        Truncation applies to the noise only."""
        noise = torch.randn(n, self.noise_dim, generator=generator)
        if truncation is not None:
            noise = truncate(noise, truncation, generator)
        if code is None:
            c = torch.randint(self.codes, (n,), generator=generator)
        else:
            c = torch.as_tensor(code, dtype=torch.long).cpu().expand(n)
            if c.min() < 0 or c.max() >= self.codes:
                raise ValueError(f"codes must lie in [0, {self.codes}), got {c.min().item()}.."
                                 f"{c.max().item()}")
        return host_to_device(torch.cat([noise, F.one_hot(c, self.codes).float()], 1), device)

    def code_of(self, z: Tensor) -> Tensor:
        """The code each latent row was drawn with."""
        return z[:, self.noise_dim:].argmax(1)

    def forward(self, z: Tensor) -> Tensor:
        return self.base(z)


class InfoDiscriminator(nn.Module):
    """D(x) as the base's logit; D(x, info=True) -> (logit, Q's code logits), one pass through
    the shared layers."""

    def __init__(self, base: Discriminator, width: int, codes: int):
        super().__init__()
        self.base, self.q = base, nn.Linear(width, codes)

    def forward(self, x: Tensor, info: bool = False):
        h = self.base.features(x)
        logit = self.base.net[-1](h).squeeze(1)
        return (logit, self.q(h)) if info else logit


def build(family_build, m, shape: tuple[int, ...]) -> tuple[InfoGenerator, InfoDiscriminator]:
    G, D = family_build(m, shape, m.z_dim + m.info_codes, shape)
    return (InfoGenerator(G, m.z_dim, m.info_codes),
            InfoDiscriminator(D, D.feature_width(shape), m.info_codes))
