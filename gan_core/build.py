"""A config's G, D, optimizers and training object, built one way for every caller: the Ray Train
worker (with DDP as `wrap`), the DDP unit tests, and the single-process benches and tests."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .models import build_models
from .progressive import ProgressiveGANTraining, schedule_for
from .speedups import Speedups, prepare_models, resolve
from .sr_training import SRTraining, content_loss
from .training import GANTraining, make_optimizers


def build_training(cfg, device, world: int = 1,
                   wrap: Callable[[nn.Module, Speedups], nn.Module] | None = None,
                   vgg: nn.Module | None = None) -> tuple[GANTraining, Speedups]:
    """The family's training object for `cfg` on `device`, and the speed switches it resolved.

    Weights are seeded with cfg.seed, so every rank starts from the same ones. `wrap(module,
    switches)` (e.g. DDP) wraps G and D after the switches are applied and before the optimizers
    see their parameters; `world` ranks of cfg.train.batch_size make the global batch the EMA
    counts; `vgg` is the feature net of SRGAN's content loss 'vgg'."""
    device = torch.device(device)
    fast = resolve(cfg.train, device.type)
    torch.manual_seed(cfg.seed)
    G, D = build_models(cfg)
    G.to(device), D.to(device)
    prepare_models(G, D, fast, d_double_backward=cfg.loss.gp_weight > 0 or cfg.loss.r1_gamma > 0)
    if wrap is not None:
        G, D = wrap(G, fast), wrap(D, fast)
    opt_g, opt_d = make_optimizers(G, D, cfg.train, fast.fused_adam)
    t = cfg.train
    common = (t.n_critic, t.ema_half_life_images, t.batch_size * world, fast.autocast)
    if cfg.model.family == "srgan":
        tr = SRTraining(G, D, opt_g, opt_d, cfg.loss, cfg.model.sr_scale, content_loss(cfg.loss, vgg),
                        t.pretrain_images, *common)
    elif cfg.model.family == "progan":
        tr = ProgressiveGANTraining(G, D, opt_g, opt_d, cfg.loss, *common, schedule=schedule_for(cfg))
    else:
        tr = GANTraining(G, D, opt_g, opt_d, cfg.loss, *common)
    if tr.G_ema is not None:
        tr.G_ema.to(device)
    return tr, fast
