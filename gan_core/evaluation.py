"""Sampling from a generator and the quality figures logged during and after training."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import TOY_SOURCES
from .data.toys import toy_modes
from .data.transforms import to_unit_range
from .metrics import evaluate
from .metrics.stacked_mnist import stacked_mnist_modes
from .models.conditional import ConditionalGenerator
from .viz import save_image_grid, toy_plot


def real_split(n: int, num_real: int, num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices into n real images: the evaluation's reference (the first num_real of a seeded
    order) and its floor set (the num_samples after them; fewer where the data runs out)."""
    order = np.random.default_rng(seed).permutation(n)
    return order[:num_real], order[num_real:num_real + num_samples]


def sample_labels(G: nn.Module, n: int) -> np.ndarray | None:
    """The labels `sample` draws for when none are given: balanced for a conditional G (class
    i % k for sample i), None for an unconditional one. A G conditioned on k-means clusters
    (data.clusters) draws each cluster as often as training fed it, in stratified order (the
    quantiles of its shares, no random draw): its samples stand for the whole data."""
    k = getattr(G, "num_classes", 0)
    counts = getattr(G, "label_counts", None)
    if counts is not None and counts.sum() > 0:  # the normal quantiles of n evenly spaced shares
        u = torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n)
        return G.cluster_of(u.to(counts.device)).cpu().numpy()
    return np.arange(n, dtype=np.int64) % k if k else None


@torch.no_grad()
def sample(G: nn.Module, n: int, seed: int, device=None, batch: int = 1024,
           labels=None, truncation: float | None = None) -> np.ndarray:
    """n samples from G in eval mode from a seeded CPU generator (same seed, same samples); a
    class-conditional G draws `labels` (default `sample_labels`), a text-conditional one the
    (n, L) caption tokens given as `labels`, an InfoGAN G the codes given as `labels` (default:
    uniform codes, as in training). `truncation` draws z from the normal truncated to
    +-truncation (`truncate`)."""
    gen = torch.Generator().manual_seed(seed)
    if isinstance(G, ConditionalGenerator) and not G.num_classes:
        if labels is None or len(labels) != n:
            raise ValueError(f"a text-conditional generator draws {n} samples for {n} captions' "
                             f"tokens, got {'none' if labels is None else len(labels)}")
        labels = torch.as_tensor(labels).long()
    elif getattr(G, "num_classes", 0):
        labels = torch.as_tensor(sample_labels(G, n) if labels is None else labels).long()
        if labels.shape != (n,):
            raise ValueError(f"{n} samples need {n} labels, got shape {tuple(labels.shape)}")
        if labels.min() < 0 or labels.max() >= G.num_classes:
            raise ValueError(f"labels must lie in [0, {G.num_classes}), got {labels.min().item()}"
                             f"..{labels.max().item()}")
    was_training = G.training
    G.eval()
    try:
        chunks = []
        codes = getattr(G, "codes", 0) and labels is not None  # InfoGAN: the labels are codes
        for i in range(0, n, batch):
            m = min(batch, n - i)
            fixed = {"code": torch.as_tensor(labels[i:i + m])} if codes else {}
            z = G.sample_z(m, gen, device, truncation, **fixed)
            out = G(z) if labels is None or codes else G(z, labels[i:i + m].to(device))
            chunks.append(out.float().cpu())
    finally:
        G.train(was_training)
    return torch.cat(chunks).numpy()


def class_rows(G: nn.Module, per_class: int, max_classes: int = 16):
    """(labels, nrow) for a grid with one row of `per_class` samples per class of a conditional
    G, or per code of an InfoGAN G (the first `max_classes`); (None, None) for another G."""
    k = getattr(G, "num_classes", 0) or getattr(G, "codes", 0)
    if not k or hasattr(G, "label_counts"):  # clusters: drawn by their shares, as unconditional
        return None, None
    return np.repeat(np.arange(min(k, max_classes)), per_class), per_class


# what each image metric needs besides the samples
_NEEDS = {"fid": ("real", "net"), "kid": ("real", "net"), "is": ("net",), "pr": ("real", "net"),
          "swd": ("real",), "modes": ("net",), "cond_acc": ("labels", "net"), "attr_corr": ("captions",)}


def _stacked_modes(samples, net) -> dict:
    """Stacked MNIST: the feature net's digit on each channel names one of 1,000 modes."""
    from .metrics.features import extract

    return stacked_mnist_modes(samples, lambda x: extract(net, x)[1].argmax(1))


def quality_metrics(source: str, samples: np.ndarray, metrics=(), real=None, net=None,
                    labels=None, captions=None) -> dict:
    """The toy metrics for toy sources; for images the named metrics (fid, kid, is, pr, swd,
    cond_acc, attr_corr) against `real` reference images with the feature net `net`; `labels`
    are the classes a conditional G was asked for (for a text one, the digits its captions
    name), `captions` the texts it was given."""
    if source in TOY_SOURCES:
        centres, std = toy_modes(source)
        if source == "gaussian_1d":
            return evaluate("gaussian_1d", samples, mean=float(centres[0, 0]), std=std)
        return evaluate("modes", samples, centres=centres, std=std)
    given = {"real": real, "net": net, "labels": labels, "captions": captions}
    out: dict = {}
    for name in metrics:
        kwargs = {k: given[k] for k in _NEEDS[name]}
        out.update(_stacked_modes(samples, **kwargs) if name == "modes" else
                   evaluate(name, samples, **kwargs))
    return out


def per_class_fid(samples: np.ndarray, labels: np.ndarray, real: np.ndarray,
                  real_labels: np.ndarray, net) -> dict:
    """FID of each class's samples against the real images of that class, and their mean."""
    out = {}
    for c in np.unique(labels):
        mine, theirs = samples[labels == c], real[real_labels == c]
        if len(theirs) < 2:
            raise ValueError(f"class {c} has {len(theirs)} real images; FID needs at least 2")
        out[f"fid_class_{c}"] = evaluate("fid", mine, real=theirs, net=net)["fid"]
    out["fid_class_mean"] = float(np.mean(list(out.values())))
    return out


def save_figure(source: str, samples: np.ndarray, path: str, title: str = "",
                nrow: int | None = None) -> str:
    """A scatter/density plot for toys, an image grid (`nrow` images a row) for images."""
    if samples.ndim == 4:
        return save_image_grid(to_unit_range(samples), path, nrow=nrow)
    centres, std = toy_modes(source)
    return toy_plot(samples, source, centres, std, path, title=title)


def caption_eval_set(text: list[list[str]], labels, n: int, seed: int, x=None, n_images: int = 256):
    """What periodic evaluation of a text-to-image G draws for: n captions, one from each of n
    images picked at random (with repeats only when there are fewer than n), the digit each
    names (the image's label; else read from the caption; None when unknown), and the first
    `n_images` of those images (from x) for D's mismatched-pair accuracy."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(text))
    idx = np.resize(idx, n)
    captions = [text[i][rng.integers(len(text[i]))] for i in idx]
    if labels is not None:
        digits = np.asarray(labels)[idx].astype(np.int64)
    else:
        from .data.captions import caption_digit
        named = [caption_digit(c) for c in captions]
        digits = None if None in named else np.array(named, dtype=np.int64)
    return captions, digits, (None if x is None else x[idx[:n_images]])


def mismatched(digits: np.ndarray | None, n: int) -> np.ndarray:
    """For each of n samples, the index of another whose condition is wrong for it: the next one
    (cyclically) naming a different digit when the digits are known, else simply the next."""
    nxt = (np.arange(n) + 1) % n
    if digits is None:
        return nxt
    out = nxt.copy()
    for i in range(n):
        for step in range(1, n):
            j = (i + step) % n
            if digits[j] != digits[i]:
                out[i] = j
                break
    return out


@torch.no_grad()
def mismatch_accuracy(D: nn.Module, images: torch.Tensor, tokens: torch.Tensor, wrong: np.ndarray) -> dict:
    """The matching-aware D on real images: `d_mismatch_acc`, the share it scores lower with a
    wrong caption (tokens[wrong]) than with the image's own, and `d_wrong_fake`, the share of
    mismatched pairs it calls fake (score < 0: probability < 0.5 for the BCE losses)."""
    was_training = D.training
    D.eval()
    try:
        right, bad = D(images, tokens), D(images, tokens[torch.as_tensor(wrong)])
    finally:
        D.train(was_training)
    return {"d_mismatch_acc": float((bad < right).float().mean()),
            "d_wrong_fake": float((bad < 0).float().mean())}
