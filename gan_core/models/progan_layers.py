"""ProGAN's layers: equalized learning rate, pixelwise feature normalisation (minibatch stddev
is in layers.py: DCGAN's D can use it too)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class EqualizedLinear(nn.Module):
    """Weights stored as N(0, 1) and scaled at run time by gain / sqrt(fan_in) (He's constant):
    Adam's steps are about lr in the stored weights whatever the layer's fan-in, so every layer
    learns at the same relative speed."""

    def __init__(self, c_in: int, c_out: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualizedConv2d(nn.Module):
    """A 'same' convolution with equalized learning rate (see EqualizedLinear)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Each pixel's feature vector scaled to unit mean square (G, after every conv)."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def zero_touch(modules) -> Tensor | float:
    """0 * (sum of the parameters of `modules`): added to an output, it gives every parameter of
    the stages not run a (zero) gradient. All blocks are built up front so DDP's hooks, registered
    at construction, cover every parameter; a parameter without a gradient would leave its bucket
    un-reduced and the next forward would raise (the R1 phase's `0 * logits` trick)."""
    params = [p for m in modules for p in m.parameters()]
    return sum(p.sum() for p in params) * 0.0 if params else 0.0
