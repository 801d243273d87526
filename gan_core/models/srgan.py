"""SRGAN (Ledig et al. 2017): a residual generator that upsamples a low-res image by sub-pixel
convolution (pixel shuffle), and a strided-conv discriminator of high-res images.

G: 9x9 conv + PReLU, `blocks` residual blocks (conv-norm-PReLU-conv-norm + skip), conv-norm plus a
skip over all blocks, log2(scale) x (conv to 4x channels, PixelShuffle(2), PReLU), 9x9 conv.
Unlike the paper's G, which draws the whole image, this one adds its output to the bicubic
upsampling of its input, and its last conv starts at zero: training starts from the bicubic
baseline instead of a blank image, which a CPU-sized run could not get past in its budget. D: conv blocks alternating stride 1 and 2 with doubling widths,
global average pooling (any input size), dense 2*width*8 -> LeakyReLU -> one logit."""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import Discriminator, maybe_spectral, norm2d


class ResidualBlock(nn.Module):
    def __init__(self, width: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, 1, 1, bias=norm != "batch"), norm2d(norm, width), nn.PReLU(),
            nn.Conv2d(width, width, 3, 1, 1, bias=norm != "batch"), norm2d(norm, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def upsample_block(width: int) -> nn.Sequential:
    """x2 by sub-pixel convolution: 4*width channels at (h, w) rearranged to width at (2h, 2w)."""
    return nn.Sequential(nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU())


class SRGenerator(nn.Module):
    """(N, C, h, w) low-res in [-1, 1] -> (N, C, h*scale, w*scale), any h and w; outputs are not
    clipped (a clip would stop the gradient), so callers clip to [-1, 1] for images."""

    def __init__(self, channels: int, scale: int, width: int, blocks: int, norm: str):
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {scale}")
        self.channels, self.scale = channels, scale
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, 1, 4), nn.PReLU())
        self.blocks = nn.Sequential(*(ResidualBlock(width, norm) for _ in range(blocks)))
        self.trunk_end = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=norm != "batch"),
                                       norm2d(norm, width))
        self.up = nn.Sequential(*(upsample_block(width) for _ in range(int(math.log2(scale)))))
        self.tail = nn.Conv2d(width, channels, 9, 1, 4)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, lr: Tensor) -> Tensor:
        h = self.head(lr)
        detail = self.tail(self.up(h + self.trunk_end(self.blocks(h))))
        return F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False) + detail


class SRDiscriminator(Discriminator):
    """Eight 3x3 convs (stride 1, 2, 1, 2, ...; widths w, w, 2w, 2w, 4w, 4w, 8w, 8w), no norm on
    the first, then global average pooling, so D judges any crop size >= 16."""

    def __init__(self, channels: int, width: int, norm: str):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = channels
        for i in range(8):
            c = width * 2 ** (i // 2)
            layers.append(maybe_spectral(nn.Conv2d(c_in, c, 3, 1 + i % 2, 1), norm))
            if i > 0:
                layers.append(norm2d(norm, c))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   maybe_spectral(nn.Linear(c_in, 2 * c_in), norm), nn.LeakyReLU(0.2),
                   maybe_spectral(nn.Linear(2 * c_in, 1), norm)]
        self.net = nn.Sequential(*layers)


def build(m, shape: tuple[int, ...], z_in: int, d_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """G upsamples (C, H/scale, W/scale) to `shape` = (C, H, W); z_in is unused (no latent)."""
    return (SRGenerator(shape[0], m.sr_scale, m.g_width, m.sr_blocks, m.g_norm),
            SRDiscriminator(d_shape[0], m.d_width, m.d_norm))
