"""Model registry: a family name maps to a builder (model config, sample shape, G input size,
D input shape) -> (G, D)."""
from __future__ import annotations

from typing import Callable

from torch import nn

from . import conditional, dcgan, digit_cnn, info, mlp, progan, srgan
from .layers import Generator

FAMILIES: dict[str, Callable[..., tuple[nn.Module, nn.Module]]] = {
    "mlp": mlp.build,
    "digit_cnn": digit_cnn.build,
    "dcgan": dcgan.build,
    "progan": progan.build,
    "srgan": srgan.build,  # G takes a low-res image, not z
}


def sample_shape(cfg) -> tuple[int, ...]:
    """Shape of one sample: (D,) for toy points, (C, H, W) for images."""
    from ..config import TOY_SOURCES

    if cfg.data.source in TOY_SOURCES:
        return (1,) if cfg.data.source == "gaussian_1d" else (2,)
    return (cfg.data.channels, cfg.data.image_size, cfg.data.image_size)


def build_models(cfg) -> tuple[Generator, nn.Module]:
    """G and D for cfg; conditional (G(z, y), D(x, y)) when model.num_classes > 0 (y: labels)
    or model.text_max_len > 0 (y: caption tokens); InfoGAN's code in z and Q head on D when
    model.info_codes > 0; a G conditioned on data.clusters counts the clusters it trains on."""
    m, shape = cfg.model, sample_shape(cfg)
    if m.num_classes or m.text_max_len:
        factors = shape[0] if cfg.data.cluster_channels else 1
        return conditional.build(FAMILIES[m.family], m, shape, count_labels=cfg.data.clusters > 0,
                                 label_factors=factors)
    if m.info_codes:
        return info.build(FAMILIES[m.family], m, shape)
    return FAMILIES[m.family](m, shape, m.z_dim, shape)


__all__ = ["FAMILIES", "Generator", "build_models", "sample_shape"]
