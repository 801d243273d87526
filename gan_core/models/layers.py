"""Small building blocks shared by the model families."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..speedups import host_to_device


class Unpool2x2(nn.Module):
    """Zero-insertion unpooling: each value goes to the top-left of a 2x2 block, zeros elsewhere
    (the 'unpooling' of Dosovitskiy et al.; the following conv fills the gaps)."""

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        out = x.new_zeros(n, c, h, 2, w, 2)
        out[:, :, :, 0, :, 0] = x
        return out.view(n, c, 2 * h, 2 * w)


def norm2d(kind: str, channels: int) -> nn.Module:
    """Normalisation after a conv; spectral norm is applied to the conv itself (see conv2d)."""
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.Identity()


def norm1d(kind: str, features: int) -> nn.Module:
    return nn.BatchNorm1d(features) if kind == "batch" else nn.Identity()


def maybe_spectral(module: nn.Module, kind: str) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if kind == "spectral" else module


class MinibatchStdDev(nn.Module):
    """Appends one feature map: the stddev of each feature and pixel over a group of `group`
    samples, averaged into one number per group (ProGAN), so D sees how varied a batch of fakes
    is. Sample i belongs to group i % (N / group), as in the original; a batch smaller than
    `group` is one group. Under DDP the groups lie within one worker's batch, so `group` must
    divide it."""

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = min(self.group, n)
        if n % g:
            raise ValueError(f"minibatch stddev: a batch of {n} is not divisible by the group size "
                             f"{g} (model.mbstd_group must divide train.batch_size)")
        y = x.reshape(g, n // g, c, h, w)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=(1, 2, 3))  # (N / g,)
        return torch.cat([x, y.repeat(g).view(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) weights as in the DCGAN paper; BatchNorm scale around 1."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            # under spectral norm `weight` is computed; initialise the stored original instead
            parametrized = getattr(getattr(m, "parametrizations", None), "weight", None)
            nn.init.normal_(parametrized.original if parametrized is not None else m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Discriminator(nn.Module):
    """Base class: `net` is a Sequential whose last layer maps features (N, F) to one logit per
    input; `features` is what a projection discriminator (conditional GAN) reads."""

    net: nn.Sequential

    def prepare(self, x: Tensor) -> Tensor:
        """The input as `net` takes it (flattened, packed)."""
        return x

    def features(self, x: Tensor) -> Tensor:
        return self.net[:-1](self.prepare(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.net[-1](self.features(x)).squeeze(1)

    def feature_width(self, shape: tuple[int, ...]) -> int:
        """The width of `features` for samples of `shape`, whatever the family."""
        was_training = self.training
        self.eval()  # no BatchNorm or spectral-norm state change from this probe
        with torch.no_grad():
            width = self.features(torch.zeros(2, *shape)).shape[1]
        self.train(was_training)
        return width


class Generator(nn.Module):
    """Base class: every generator maps z (N, z_dim) to samples in the data range [-1, 1]."""

    z_dim: int

    def sample_z(self, n: int, generator: torch.Generator | None = None, device=None,
                 truncation: float | None = None) -> Tensor:
        # drawn on the CPU so a seeded CPU generator gives the same z on every device
        z = torch.randn(n, self.z_dim, generator=generator)
        return host_to_device(z if truncation is None else truncate(z, truncation, generator), device)


def truncate(z: Tensor, threshold: float, generator: torch.Generator | None = None) -> Tensor:
    """The truncation trick (Brock et al., BigGAN): entries of z beyond +-threshold are redrawn
    until all lie within, trading the samples' variety for their fidelity."""
    if not threshold > 0:
        raise ValueError(f"truncation must be positive, got {threshold}")
    z = z.clone()
    out = z.abs() > threshold
    while out.any():
        z[out] = torch.randn(int(out.sum()), generator=generator)
        out = z.abs() > threshold
    return z
