"""VGG19 feature maps for SRGAN's content loss (VGG54: the 4th conv of the 5th block, after
its ReLU, as in Ledig et al.), built here and filled from a user's weights file in
torchvision's layout (`features.<i>.weight`); nothing is downloaded."""
from __future__ import annotations

import torch
from torch import Tensor, nn

# VGG19's conv widths, "M" = 2x2 max-pool; the net is cut after the ReLU of the last conv
LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512)
FEATURE_SCALE = 1 / 12.75  # the paper's rescaling of the feature maps
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet, as the weights expect


class VGGFeatures(nn.Module):
    """RGB in [-1, 1] (N, 3, H, W) -> VGG54 feature maps; frozen, eval mode."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in LAYOUT:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, 1, 1), nn.ReLU()]
                c_in = v
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.features(((x + 1) / 2 - self.mean) / self.std) * FEATURE_SCALE

    @staticmethod
    def feature_weights(state: dict) -> dict:
        """The `features.*` tensors of a VGG19 state dict (the classifier's are not needed)."""
        return {k: v for k, v in state.items() if k.startswith("features.")
                and int(k.split(".")[1]) < 2 * len(LAYOUT) - LAYOUT.count("M")}

    @classmethod
    def from_state(cls, state: dict) -> "VGGFeatures":
        """Built and filled from `feature_weights(state)`; RuntimeError if they do not fit."""
        net = cls()
        net.features.load_state_dict({k[len("features."):]: v
                                      for k, v in cls.feature_weights(state).items()})
        return net


def load_vgg_weights(path: str) -> dict:
    """The feature weights in `path` (weights_only: no pickled code), checked against VGG19;
    ValueError naming the file otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        weights = VGGFeatures.feature_weights(state)
        VGGFeatures.from_state(weights)
    except Exception as e:  # unreadable, pickled objects, or another network's weights
        raise ValueError(f"{path} is not a VGG19 state dict in torchvision's layout "
                         f"(features.<i>.weight): {' '.join(str(e).split())[:300]}") from None
    return weights
