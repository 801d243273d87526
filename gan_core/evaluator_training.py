"""Train the digit classifier behind the image metrics (pure PyTorch, one process).

`train_classifier` holds out a seeded, stratified share of the labelled images, trains on the rest
with AdamW under a one-cycle schedule and light augmentation (small random rotations, scalings and
+-2 px shifts in one affine warp; a grey, noisy background on half the images, as early GAN
samples have: without it the classifier reads any such background as an 8), and reports held-out
accuracy."""
from __future__ import annotations

import math
import time
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gan_core.models.evaluator import DigitClassifier

MAX_SHIFT_PX = 2.0
MAX_ROTATION_DEG = 10.0
MAX_SCALE = 0.08  # zoom in [1 - s, 1 + s]
MAX_BACKGROUND = 0.35  # grey level added under the ink
MAX_NOISE_STD = 0.2
RECALIBRATION_IMAGES = 2048  # clean training images that set BatchNorm statistics after each epoch


def to_model_range(x: Tensor) -> Tensor:
    """[0, 1] -> [-1, 1], the formula of gan_core.data.transforms.preprocess_images."""
    return x.clamp(0, 1) * 2 - 1


def split_indices(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified split: each class gives round(val_fraction * its count) samples to validation
    (at least one when it has two or more). Deterministic for a seed; indices sorted."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(val_fraction * len(idx)))
        k = min(max(k, 1 if len(idx) >= 2 else 0), len(idx) - 1)
        val.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def augment_batch(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random rotation, scale and shift of (B, 1, H, W) images in [0, 1] (background 0), one
    bilinear warp per batch."""
    b, _, h, w = x.shape
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(MAX_ROTATION_DEG)
    scale = 1 + (torch.rand(b, generator=gen) * 2 - 1) * MAX_SCALE
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size.
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * MAX_SHIFT_PX
    tx, ty = shift[:, 0] * 2 / w, shift[:, 1] * 2 / h
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def noisy_background(x: Tensor, gen: torch.Generator, share: float = 0.5) -> Tensor:
    """`share` of the (B, 1, H, W) images in [0, 1] get a uniform grey level and Gaussian noise
    of random strengths (clamped to [0, 1]); the rest are returned unchanged."""
    b = x.shape[0]
    on = (torch.rand(b, 1, 1, 1, generator=gen) < share).to(x.dtype)
    level = torch.rand(b, 1, 1, 1, generator=gen) * MAX_BACKGROUND
    std = torch.rand(b, 1, 1, 1, generator=gen) * MAX_NOISE_STD
    noise = torch.randn(x.shape, generator=gen) * std
    return (x + on * (level + noise)).clamp(0, 1)


@torch.no_grad()
def recalibrate_batchnorm(model: DigitClassifier, x: Tensor, batch_size: int = 256) -> None:
    """Recompute every BatchNorm's running mean and variance as exact averages over x (model-range
    images), with the weights fixed and dropout off. The running averages kept during training lag
    behind weights that moved fast (a one-cycle peak, or a run of a few dozen steps); these match
    the final weights. Leaves the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.eval()
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
        bn.train()
    try:
        for i in range(0, len(x), batch_size):
            if len(x) - i >= 2:  # BatchNorm1d needs two samples per batch
                model(x[i:i + batch_size])
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        model.eval()


@torch.no_grad()
def predict(model: DigitClassifier, x, batch_size: int = 512, unit_range: bool = True) -> np.ndarray:
    """Predicted classes for images (N, 1, H, W); unit_range=True means x is in [0, 1]."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.asarray(x[i:i + batch_size], dtype=np.float32))
            if unit_range:
                xb = to_model_range(xb)
            out.append(model(xb).argmax(1).numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def accuracy(model: DigitClassifier, x, y, batch_size: int = 512) -> float:
    """Share of images (N, 1, H, W) in [0, 1] whose predicted class equals y."""
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"{len(y)} labels for {len(x)} images")
    if len(y) == 0:
        raise ValueError("accuracy of an empty set")
    return float((predict(model, x, batch_size) == y).mean())


def _check_inputs(x: np.ndarray, y: np.ndarray, val_fraction: float, batch_size: int, epochs: int):
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"x must be (N, 1, H, W) images, got shape {x.shape}")
    if y.shape != (len(x),):
        raise ValueError(f"y must be ({len(x)},) labels for {len(x)} images, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= DigitClassifier.num_classes):
        raise ValueError(f"labels must be in [0, {DigitClassifier.num_classes}), "
                         f"got [{y.min()}, {y.max()}]")
    if len(x) < 20:
        raise ValueError(f"need at least 20 labelled images, got {len(x)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("images contain NaN or inf")
    if x.min() < -1e-6 or x.max() > 1 + 1e-6:
        raise ValueError(f"images must be in [0, 1], got [{x.min():.3g}, {x.max():.3g}]")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 (BatchNorm), got {batch_size}")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    return x, y.astype(np.int64)


def train_classifier(x: np.ndarray, y: np.ndarray, *, epochs: int = 8, batch_size: int = 128,
                     lr: float = 2e-3, val_fraction: float = 0.2, seed: int = 0,
                     augment: bool = True, threads: Optional[int] = None,
                     log: Optional[Callable[[str], None]] = print) -> tuple[DigitClassifier, dict]:
    """Train a DigitClassifier on labelled images x (N, 1, H, W) float32 in [0, 1] and labels y.

    Returns the model in eval mode and {"val_accuracy", "train_accuracy", "num_train", "num_val",
    "epochs", "seconds", "history"} (history: one dict per epoch with its mean loss, augmented
    training accuracy and val_accuracy); accuracies are measured in eval mode without augmentation
    after recomputing the BatchNorm statistics on clean training images. The same
    seed (and thread count) gives the same weights. `threads` sets torch's intra-op threads for the
    call; `log` gets one line per epoch (None: silent)."""
    x, y = _check_inputs(x, y, val_fraction, batch_size, epochs)
    log = log or (lambda _: None)
    tr, va = split_indices(y, val_fraction, seed)
    s = DigitClassifier.input_size
    xt = torch.from_numpy(x)
    if xt.shape[2:] != (s, s):  # resize once, not every batch; same resampling as model.prepare
        down = xt.shape[2] > s or xt.shape[3] > s
        xt = F.interpolate(xt, size=(s, s), mode="bilinear", align_corners=False,
                           antialias=down).clamp(0, 1)
    x_train, y_train = xt[tr], torch.from_numpy(y[tr])
    x_val, y_val = xt[va].numpy(), y[va]
    # A fixed random subset (the data may be sorted by class) for the BatchNorm statistics.
    calib = np.random.default_rng(seed).permutation(len(tr))[:RECALIBRATION_IMAGES]
    x_calib = to_model_range(x_train[np.sort(calib)])
    n = len(tr)

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    history = []
    try:
        with torch.random.fork_rng(devices=[]):  # seed init and dropout without touching the caller's RNG
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            model = DigitClassifier()
            opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
            steps_per_epoch = n // batch_size + (1 if n % batch_size >= 2 else 0)
            steps_per_epoch = max(steps_per_epoch, 1)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                        steps_per_epoch=steps_per_epoch,
                                                        pct_start=0.2)
            for epoch in range(1, epochs + 1):
                model.train()
                perm = torch.randperm(n, generator=gen)
                loss_sum, correct, seen = 0.0, 0, 0
                for step in range(steps_per_epoch):
                    idx = perm[step * batch_size:(step + 1) * batch_size]
                    xb, yb = x_train[idx], y_train[idx]
                    if augment:
                        xb = noisy_background(augment_batch(xb, gen), gen)
                    logits = model(to_model_range(xb))
                    loss = F.cross_entropy(logits, yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    loss_sum += loss.item() * len(idx)
                    correct += int((logits.argmax(1) == yb).sum())
                    seen += len(idx)
                recalibrate_batchnorm(model, x_calib)
                val_acc = accuracy(model, x_val, y_val)
                history.append({"epoch": epoch, "loss": loss_sum / seen,
                                "train_accuracy_augmented": correct / seen, "val_accuracy": val_acc})
                log(f"epoch {epoch}/{epochs}: loss {loss_sum / seen:.4f}, train acc (augmented) "
                    f"{correct / seen:.4f}, val acc {val_acc:.4f}, "
                    f"{time.perf_counter() - start:.0f}s")
            train_acc = accuracy(model, x_train.numpy(), y[tr])
    finally:
        torch.set_num_threads(old_threads)
    metrics = {"val_accuracy": val_acc, "train_accuracy": train_acc, "num_train": int(n),
               "num_val": int(len(x_val)), "epochs": int(epochs),
               "seconds": round(time.perf_counter() - start, 2), "history": history}
    return model, metrics
