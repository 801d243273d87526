"""Cluster pseudo-labels for images (data.clusters): the labels of a self-conditioned GAN.

One Gaussian latent mapped onto data made of separate classes puts mass between them: an
unconditional MNIST G draws digits the evaluator cannot read, and labels remove most of them
(docs/benchmarks.md). Clusters of the images themselves stand in for labels the data does not
have (Liu et al. 2020, "Diverse image generation via self-conditioned GANs", cluster D's
features; clusters fixed before training keep D's loop and the data pipeline as they are).

The clusters are k-means on a spectral embedding of the images' nearest-neighbour graph (on a
PCA of the pixels): the graph follows each digit's curved manifold, where k-means on the pixels
cuts across it. With 50 clusters of the MNIST test split 92% of the digits share their cluster's
majority class, against 83% for k-means on the pixels (docs/benchmarks.md)."""
from __future__ import annotations

import numpy as np

from gan_core.data import DataError

_PCA_DIMS = 50  # the graph's distances on the pixels' leading components: the same neighbours, faster
_EMBED_DIMS = 20  # eigenvectors of the graph's Laplacian that k-means clusters
_NEIGHBOURS = 10
_FIT_MAX = 20_000  # the embedding is fitted on at most this many images; the rest take their nearest one's cluster


def cluster_labels(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(N,) int64 cluster of each of the N images x (N, C, H, W): k-means with k clusters on a
    spectral embedding of the images' k-nearest-neighbour graph; the same x, k and seed give the
    same labels."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.manifold import SpectralEmbedding
    from sklearn.neighbors import NearestNeighbors

    if len(x) < k:
        raise DataError(f"data.clusters: {k} clusters need at least {k} images, the data has {len(x)}")
    flat = x.reshape(len(x), -1).astype(np.float32, copy=False)  # the caller's float32 pixels, not a copy
    order = np.random.default_rng(seed).permutation(len(flat))
    fit = order[:_FIT_MAX]
    pca = PCA(min(_PCA_DIMS, len(fit), flat.shape[1]), random_state=seed).fit(flat[fit])
    feats = pca.transform(flat)
    embed = SpectralEmbedding(min(_EMBED_DIMS, len(fit) - 1), affinity="nearest_neighbors",
                              n_neighbors=min(_NEIGHBOURS, len(fit) - 1), eigen_solver="lobpcg",
                              random_state=seed).fit_transform(feats[fit])
    labels = np.empty(len(flat), np.int64)
    labels[fit] = KMeans(k, n_init=3, random_state=seed).fit_predict(embed)
    rest = order[_FIT_MAX:]
    if len(rest):
        nearest = NearestNeighbors(n_neighbors=1).fit(feats[fit]).kneighbors(feats[rest], return_distance=False)
        labels[rest] = labels[fit][nearest[:, 0]]
    return labels


def channel_cluster_labels(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(N,) int64 joint label of each of the N images x (N, C, H, W) from each channel's cluster:
    one clustering (`cluster_labels`) of all N * C single-channel images, so a cluster means the
    same in every channel; image i's label is sum_c k_c * k^(C-1-c) (R first, as Stacked MNIST's
    digit triples)."""
    n, c = x.shape[:2]
    per_channel = cluster_labels(x.reshape(n * c, 1, *x.shape[2:]), k, seed).reshape(n, c)
    return per_channel @ (k ** np.arange(c - 1, -1, -1, dtype=np.int64))
