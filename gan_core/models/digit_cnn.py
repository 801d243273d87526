"""The MNIST digit generator: z -> affine -> 64x7x7 -> (2x2 unpool, LeakyReLU, conv) x2 -> sigmoid,
and a small binary CNN discriminator. Output 1x28x28."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import Discriminator, Generator, Unpool2x2, maybe_spectral, norm2d


class DigitGenerator(Generator):
    def __init__(self, z_dim: int, channels: int, width: int, norm: str):
        super().__init__()
        self.z_dim = z_dim
        self.fc = nn.Linear(z_dim, width * 7 * 7)
        self.width = width
        self.body = nn.Sequential(
            Unpool2x2(), nn.LeakyReLU(0.2), nn.Conv2d(width, width // 2, 5, padding=2),
            norm2d(norm, width // 2),
            Unpool2x2(), nn.LeakyReLU(0.2), nn.Conv2d(width // 2, channels, 5, padding=2),
        )

    def forward(self, z: Tensor) -> Tensor:
        x = self.fc(z).view(z.shape[0], self.width, 7, 7)
        # sigmoid as in the design, rescaled to the pipeline's [-1, 1] data range
        return torch.sigmoid(self.body(x)) * 2 - 1


class DigitDiscriminator(Discriminator):
    def __init__(self, channels: int, width: int, norm: str):
        super().__init__()
        self.net = nn.Sequential(
            maybe_spectral(nn.Conv2d(channels, width // 2, 5, stride=2, padding=2), norm),
            nn.LeakyReLU(0.2),  # 14x14
            maybe_spectral(nn.Conv2d(width // 2, width, 5, stride=2, padding=2), norm),
            norm2d(norm, width), nn.LeakyReLU(0.2),  # 7x7
            nn.Flatten(), maybe_spectral(nn.Linear(width * 7 * 7, 1), norm),
        )


def build(m, shape: tuple[int, ...], z_in: int, d_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    return (DigitGenerator(z_in, shape[0], m.g_width, m.g_norm),
            DigitDiscriminator(d_shape[0], m.d_width, m.d_norm))
