"""A small digit classifier that the project trains itself, as the feature extractor and classifier
behind the image metrics (FID/KID on its penultimate features, IS on its logits) when Inception
weights are not at hand.

Inputs are (N, 1, H, W) in the pipeline's data range [-1, 1], any H and W: `prepare` resizes to
28x28 (bilinear, antialiased when shrinking), so 16x16 generator output and 32x32 padded MNIST
both work. A plain nn.Module, usable as a torchmetrics custom feature extractor."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class DigitClassifier(nn.Module):
    """conv32-conv32-pool-conv64-conv64-pool (BatchNorm, ReLU) -> dropout -> 128-d -> 10 logits."""

    num_features = 128
    num_classes = 10
    input_size = 28

    def __init__(self, dropout: float = 0.3):
        super().__init__()
        self.dropout = float(dropout)  # the constructor argument, saved beside the weights
        self.body = nn.Sequential(
            *_conv_block(1, 32), *_conv_block(32, 32), nn.MaxPool2d(2),  # 14x14
            *_conv_block(32, 64), *_conv_block(64, 64), nn.MaxPool2d(2),  # 7x7
            nn.Flatten(),
        )
        self.penultimate = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(64 * 7 * 7, self.num_features, bias=False),
            nn.BatchNorm1d(self.num_features), nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, self.num_classes))

    def prepare(self, x: Tensor) -> Tensor:
        """(N, 1, H, W) in [-1, 1] -> float (N, 1, 28, 28); 28x28 input is returned unchanged."""
        if not isinstance(x, Tensor):
            x = torch.as_tensor(x)
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected (N, 1, H, W) images, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected float images in [-1, 1], got dtype {x.dtype}")
        h, w = x.shape[2:]
        s = self.input_size
        if (h, w) == (s, s):
            return x
        down = h > s or w > s  # antialias only matters when shrinking
        return F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=down)

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.penultimate(self.body(self.prepare(x)))
        return f, self.head(f)

    def features(self, x: Tensor) -> Tensor:
        """(N, 128) penultimate activations, after the ReLU."""
        return self.penultimate(self.body(self.prepare(x)))

    def forward(self, x: Tensor) -> Tensor:
        """(N, 10) class logits."""
        return self.features_and_logits(x)[1]

