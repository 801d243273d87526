"""Feature extraction for the image metrics, shared by FID, KID, IS, PR and the conditional accuracy.

A "feature net" is any ``nn.Module`` with ``features(x) -> (N, F)``, ``forward(x) -> (N, K)`` logits
and an int ``num_features`` (``num_classes`` optional), taking float images (N, C, H, W) in [-1, 1],
e.g. ``gan_core.models.evaluator.DigitClassifier``. Nothing here depends on a particular net.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["FeatureAdapter", "as_images", "check_images", "eval_mode", "extract", "net_device",
           "require_samples"]


# Evaluation runs on rank 0 alone during DDP training; a torchmetrics metric would otherwise
# gather its state across the process group at compute() and wait forever for the other ranks.
RANK_LOCAL = {"sync_on_compute": False}


def as_images(images, name: str = "images") -> Tensor:
    """numpy or torch (N, C, H, W) -> float32 CPU tensor; anything else raises ValueError."""
    if isinstance(images, Tensor):
        x = images
    else:
        a = np.asarray(images)
        # read-only arrays (Arrow-backed batches, memory-mapped files) are copied: torch would warn
        x = torch.as_tensor(a if a.flags.writeable else a.copy())
    if x.ndim != 4:
        raise ValueError(f"{name} must be (N, C, H, W), got shape {tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype == torch.uint8):
        raise ValueError(f"{name} must be float images in [-1, 1], got dtype {x.dtype}")
    if x.dtype == torch.uint8:
        raise ValueError(f"{name} are uint8; convert them to float in [-1, 1] first (x / 127.5 - 1)")
    return x.detach().to(torch.float32)


def require_samples(n: int, minimum: int, metric: str, what: str = "samples", reason: str = "") -> None:
    """ValueError naming the metric when ``n < minimum``."""
    if n < minimum:
        why = f" ({reason})" if reason else ""
        raise ValueError(f"{metric} needs at least {minimum} {what}, got {n}{why}")


@contextlib.contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` in eval mode under no_grad; its previous train/eval mode is restored afterwards."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            yield net
    finally:
        net.train(was_training)


def net_device(net: nn.Module) -> torch.device:
    """Device of the net's first parameter or buffer (CPU for a net without any)."""
    for t in (*net.parameters(), *net.buffers()):
        return t.device
    return torch.device("cpu")


def _expected_channels(net: nn.Module) -> int | None:
    """in_channels of the net's first conv layer, if it has one (only used to word error messages)."""
    for m in net.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return int(m.in_channels)
    return None


def check_images(net: nn.Module, images, name: str = "images") -> Tensor:
    """``as_images`` plus a 1-sample probe through ``net.features``: a net that cannot take these
    images (usually a channel-count mismatch) raises ValueError naming both shapes."""
    x = as_images(images, name)
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    try:
        with eval_mode(net):
            net.features(x[:1].to(net_device(net)))
    except (RuntimeError, ValueError) as e:
        want = _expected_channels(net)
        wants = f" (its first conv takes {want} channel(s), the images have {x.shape[1]})" if want else ""
        raise ValueError(
            f"the feature net {type(net).__name__} cannot take {name} of shape {tuple(x.shape)}{wants}; "
            f"probe on shape {tuple(x[:1].shape)} failed: {e}"
        ) from e
    return x


def extract(net: nn.Module, images, batch_size: int = 500, min_samples: int = 1,
            metric: str = "extract") -> tuple[np.ndarray, np.ndarray]:
    """Features (N, F) as float64 and logits (N, K) of ``images`` (numpy or torch, (N, C, H, W) in
    [-1, 1]) in eval mode under no_grad, ``batch_size`` images at a time.

    Raises ValueError when the net cannot take the images (channel count) or when N < ``min_samples``
    (the calling ``metric``'s minimum)."""
    x = as_images(images)
    require_samples(x.shape[0], min_samples, metric)
    x = check_images(net, x)
    feats, logits = [], []
    device = net_device(net)
    with eval_mode(net):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].to(device)
            if hasattr(net, "features_and_logits"):
                f, lg = net.features_and_logits(xb)
            else:
                f, lg = net.features(xb), net(xb)
            feats.append(f.reshape(f.shape[0], -1).double().cpu())
            logits.append(lg.reshape(lg.shape[0], -1).double().cpu())
    return torch.cat(feats).numpy(), torch.cat(logits).numpy()


class FeatureAdapter(nn.Module):
    """Wraps a feature net for torchmetrics' ``feature=`` argument.

    torchmetrics calls ``feature(imgs)`` on whatever ``update`` receives and, for a custom module,
    neither rescales nor casts the images (with ``normalize=False``), so float images in [-1, 1]
    reach the net unchanged. ``output="features"`` returns ``net.features`` (FID, KID),
    ``output="logits"`` returns ``net(x)`` (IS applies the softmax itself). Outputs are float64, so
    FID's mean/covariance sums and its result stay in double precision, and on the CPU, where
    the metric's states live (the images go to the net's device). ``num_features`` is set so
    torchmetrics does not probe the net with a random uint8 image."""

    def __init__(self, net: nn.Module, output: str = "features"):
        super().__init__()
        if output not in ("features", "logits"):
            raise ValueError(f"output must be 'features' or 'logits', got {output!r}")
        self.net = net
        self.output = output
        if output == "features":
            self.num_features = int(net.num_features)
        else:
            self.num_features = int(getattr(net, "num_classes", 0)) or None

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:  # never expected: guard against a silent 0..255 input
            raise ValueError("FeatureAdapter expects float images in [-1, 1], got uint8")
        x = x.to(net_device(self.net))
        with eval_mode(self.net):
            out = self.net.features(x) if self.output == "features" else self.net(x)
        return out.reshape(out.shape[0], -1).double().cpu()


def warn_if(cond: bool, msg: str) -> None:
    if cond:
        warnings.warn(msg, UserWarning, stacklevel=3)
