"""Improved precision and recall (Kynkaanniemi et al. 2019) in a feature net's feature space.

Each set's manifold is the union of balls around its features, the radius of each ball being the
distance to that feature's k-th nearest neighbour within the same set (itself excluded).
precision = share of fake features inside the real manifold; recall = share of real features
inside the fake manifold. "Inside" is ``distance <= radius``, as in the authors' code. Pairwise
distances are computed with ``torch.cdist`` in row chunks, in float64.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .features import extract, require_samples

__all__ = ["knn_radii", "manifold_share", "precision_recall", "precision_recall_features"]


def _as_features(f, name: str) -> Tensor:
    t = torch.as_tensor(np.asarray(f) if not isinstance(f, Tensor) else f).detach().double().cpu()
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        raise ValueError(f"{name} must be (N, F) features, got shape {tuple(t.shape)}")
    return t


def _chunk(n_ref: int) -> int:
    """Query rows per cdist block: at most 2^24 distances (128 MiB of float64) at a time."""
    return max(1, min(4096, (1 << 24) // max(1, n_ref)))


def knn_radii(f: Tensor, k: int) -> Tensor:
    """Distance from each row of ``f`` to its k-th nearest other row, (N,)."""
    out, chunk = [], _chunk(f.shape[0])
    for i in range(0, f.shape[0], chunk):
        d = torch.cdist(f[i:i + chunk], f)  # includes the zero distance to itself
        out.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(out)


def manifold_share(query: Tensor, ref: Tensor, radii: Tensor) -> float:
    """Share of ``query`` rows within ``radii[j]`` of at least one ``ref`` row j."""
    inside, chunk = 0, _chunk(ref.shape[0])
    for i in range(0, query.shape[0], chunk):
        d = torch.cdist(query[i:i + chunk], ref)
        inside += int((d <= radii[None, :]).any(dim=1).sum())
    return inside / query.shape[0]


def precision_recall_features(f_fake, f_real, k: int = 3) -> dict:
    """Precision and recall of precomputed features (N, F) (or (N,) for 1-D); each set needs > k rows."""
    ff, fr = _as_features(f_fake, "fake features"), _as_features(f_real, "real features")
    if ff.shape[1] != fr.shape[1]:
        raise ValueError(f"feature dims differ: fake {tuple(ff.shape)} vs real {tuple(fr.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    require_samples(ff.shape[0], k + 1, "precision/recall", "fake samples", f"k={k}")
    require_samples(fr.shape[0], k + 1, "precision/recall", "real samples", f"k={k}")
    return {
        "precision": manifold_share(ff, fr, knn_radii(fr, k)),
        "recall": manifold_share(fr, ff, knn_radii(ff, k)),
    }


def precision_recall(fake, real, net: nn.Module, k: int = 3, batch_size: int = 500) -> dict:
    """Improved precision/recall of ``fake`` vs ``real`` images in ``net``'s feature space."""
    ff, _ = extract(net, fake, batch_size, min_samples=k + 1, metric=f"precision/recall (k={k})")
    fr, _ = extract(net, real, batch_size, min_samples=k + 1, metric=f"precision/recall (k={k})")
    return precision_recall_features(ff, fr, k)
