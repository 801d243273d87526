"""Conditional accuracy: does a class-conditional generator draw the class it was asked for?"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .features import extract

__all__ = ["conditional_accuracy"]


def conditional_accuracy(fake, labels, net: nn.Module, batch_size: int = 500) -> dict:
    """Share of ``fake`` images whose argmax logit under ``net`` equals the requested label
    (``labels``: (N,) ints, numpy or torch) -> {"cond_acc"}."""
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    _, logits = extract(net, fake, batch_size, metric="cond_acc")
    if y.shape[0] != logits.shape[0]:
        raise ValueError(f"cond_acc got {logits.shape[0]} images but {y.shape[0]} labels")
    return {"cond_acc": float(np.mean(logits.argmax(axis=1) == y.astype(np.int64)))}
