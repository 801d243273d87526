"""Progressive growing GAN (Karras et al. 2018): G and D for 4x4 -> 8x8 -> ... -> size.

Every block is built up front and `set_stage(level, alpha)` picks how many run (resolution
4 * 2**level) and how far the newest one is faded in. Built up front rather than re-wrapped in DDP
at each growth step: one DDP wrapper and one optimizer for the whole run, and the parameters of
the blocks not yet (or no longer) run get a zero gradient (`zero_touch`), so the all-reduce always
covers every parameter. A fresh module is at the final stage (level max, alpha 1): the registered
generator samples at the final resolution.

G and D work at full size: G's stage output is nearest-upsampled to `size`, D averages its input
down to the stage resolution (see gan_core/progressive.py). Widths: `width` channels at the final
resolution, doubling at each halving up to 8 * width. G's output is linear, as in the paper
(no tanh); samples are clipped to [-1, 1] only where they are shown.
"""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import Generator, MinibatchStdDev
from .progan_layers import EqualizedConv2d, EqualizedLinear, pixel_norm, zero_touch


def _act(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


def _levels(size: int) -> int:
    if size < 8 or size & (size - 1):
        raise ValueError(f"progressive growing needs a power-of-two size >= 8, got {size}")
    return size.bit_length() - 3


def _width(level: int, levels: int, width: int) -> int:
    return min(8 * width, width << (levels - level))


def _up2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class _Staged(nn.Module):
    levels: int

    def set_stage(self, level: int, alpha: float) -> None:
        if not 0 <= level <= self.levels or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"stage (level {level}, alpha {alpha}) outside 0..{self.levels}, [0, 1]")
        self.level, self.alpha = level, float(alpha)

    @property
    def fading(self) -> bool:
        return self.level > 0 and self.alpha < 1.0


class ProGANGenerator(Generator, _Staged):
    def __init__(self, z_dim: int, channels: int, size: int, width: int):
        super().__init__()
        self.z_dim, self.size, self.levels = z_dim, size, _levels(size)
        ch = [_width(k, self.levels, width) for k in range(self.levels + 1)]
        self.c0 = ch[0]
        # the paper's 4x4 "conv" from a 1x1 latent is a dense layer; gain sqrt(2)/4 as in its code
        self.dense = EqualizedLinear(z_dim, ch[0] * 16, gain=math.sqrt(2) / 4)
        self.conv0 = EqualizedConv2d(ch[0], ch[0], 3)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualizedConv2d(ch[k - 1], ch[k], 3), EqualizedConv2d(ch[k], ch[k], 3)])
            for k in range(1, self.levels + 1))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(c, channels, 1, gain=1.0) for c in ch)
        self.set_stage(self.levels, 1.0)

    def forward(self, z: Tensor) -> Tensor:
        h = pixel_norm(_act(self.dense(pixel_norm(z)).view(z.shape[0], self.c0, 4, 4)))
        h = pixel_norm(_act(self.conv0(h)))
        prev = h
        for conv_a, conv_b in self.blocks[:self.level]:
            prev = h
            h = pixel_norm(_act(conv_a(_up2(h))))
            h = pixel_norm(_act(conv_b(h)))
        out = self.to_rgb[self.level](h)
        used = {self.level}
        if self.fading:
            skip = _up2(self.to_rgb[self.level - 1](prev))
            out = skip + self.alpha * (out - skip)
            used.add(self.level - 1)
        out = F.interpolate(out, size=self.size, mode="nearest") if out.shape[-1] < self.size else out
        idle = [*self.blocks[self.level:], *(m for k, m in enumerate(self.to_rgb) if k not in used)]
        return out + zero_touch(idle)


class ProGANDiscriminator(_Staged):
    def __init__(self, channels: int, size: int, width: int, mbstd_group: int):
        super().__init__()
        self.size, self.levels = size, _levels(size)
        ch = [_width(k, self.levels, width) for k in range(self.levels + 1)]
        self.from_rgb = nn.ModuleList(EqualizedConv2d(channels, c, 1) for c in ch)
        # blocks[k - 1] takes level k down to level k - 1
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualizedConv2d(ch[k], ch[k], 3), EqualizedConv2d(ch[k], ch[k - 1], 3)])
            for k in range(1, self.levels + 1))
        self.mbstd = MinibatchStdDev(mbstd_group)
        self.conv0 = EqualizedConv2d(ch[0] + 1, ch[0], 3)
        self.dense = EqualizedLinear(ch[0] * 16, ch[0])
        self.out = EqualizedLinear(ch[0], 1, gain=1.0)
        self.set_stage(self.levels, 1.0)

    def _block(self, k: int, h: Tensor) -> Tensor:
        conv_a, conv_b = self.blocks[k - 1]
        return F.avg_pool2d(_act(conv_b(_act(conv_a(h)))), 2)

    def forward(self, x: Tensor) -> Tensor:
        f = x.shape[-1] // (4 << self.level)
        x = F.avg_pool2d(x, f) if f > 1 else x
        h = _act(self.from_rgb[self.level](x))
        used = {self.level}
        if self.level > 0:
            h = self._block(self.level, h)
        if self.fading:
            skip = _act(self.from_rgb[self.level - 1](F.avg_pool2d(x, 2)))
            h = skip + self.alpha * (h - skip)
            used.add(self.level - 1)
        for k in range(self.level - 1, 0, -1):
            h = self._block(k, h)
        h = _act(self.conv0(self.mbstd(h)))
        logits = self.out(_act(self.dense(h.flatten(1)))).squeeze(1)
        idle = [*self.blocks[self.level:], *(m for k, m in enumerate(self.from_rgb) if k not in used)]
        return logits + zero_touch(idle)


def build(m, shape: tuple[int, ...], z_in: int, d_shape: tuple[int, ...]):
    return (ProGANGenerator(z_in, shape[0], shape[1], m.g_width),
            ProGANDiscriminator(d_shape[0], shape[1], m.d_width, m.mbstd_group))
