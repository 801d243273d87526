"""SRGAN's update beside GANTraining: G takes the bicubic-downsampled real batch instead of z.

While fewer than `pretrain_images` images have been seen, a step is one content-loss-only G
update (the SRResNet phase; D untouched); after that, GANTraining's phases run with G's loss
= content + adv_weight * adversarial. The switch depends only on the image counter, which a
checkpoint restores, so a resumed run switches at the same step."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import LossConfig
from .ema import ema_update
from .sr import downsample
from .training import GANTraining, no_sync, requires_grad, unwrap

ContentLoss = Callable[[Tensor, Tensor], Tensor]


def content_loss(loss: LossConfig, vgg: nn.Module | None = None) -> ContentLoss:
    """Pixel MSE / L1, or MSE of `vgg`'s features (content 'vgg')."""
    if loss.content == "mse":
        return F.mse_loss
    if loss.content == "l1":
        return F.l1_loss
    if vgg is None:
        raise ValueError("content loss 'vgg' needs the VGG feature network")
    return lambda fake, real: F.mse_loss(vgg(fake), vgg(real).detach())


class SRTraining(GANTraining):
    def __init__(self, G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, loss: LossConfig, scale: int,
                 content: ContentLoss, pretrain_images: int = 0, n_critic: int = 1,
                 ema_half_life_images: float = 0.0, global_batch: int = 1,
                 autocast: torch.dtype | None = None):
        super().__init__(G, D, opt_g, opt_d, loss, n_critic, ema_half_life_images, global_batch,
                         autocast)
        self.scale, self.content, self.pretrain_images = scale, content, pretrain_images
        self._lr: Tensor | None = None  # this step's low-res input, made from the real batch

    @property
    def pretraining(self) -> bool:
        return self.images_seen < self.pretrain_images

    def step(self, real: Tensor, z_gen: torch.Generator | None = None,
             y: Tensor | None = None) -> dict[str, Tensor]:
        self._lr = downsample(real, self.scale)
        if not self.pretraining:
            return super().step(real, z_gen, y)
        out = self._phase_pretrain(real)
        self.step_index += 1
        self.images_seen += self.global_batch
        return out

    def _fake(self, n: int, y: Tensor | None, gen, device, mix=None) -> tuple[Tensor, Tensor]:
        return self._net(self.G, self._lr), self._lr

    def _update_ema(self) -> None:
        if self.G_ema is not None:
            ema_update(self.G_ema, unwrap(self.G), self.ema_beta)

    def _phase_pretrain(self, real: Tensor) -> dict[str, Tensor]:
        self.opt_g.zero_grad(set_to_none=True)
        loss = self.content(self._net(self.G, self._lr), real)
        loss.backward()
        self.opt_g.step()
        self._update_ema()
        return {"content": loss.detach()}

    def _phase_g(self, real: Tensor, z_gen, y: Tensor | None = None) -> dict[str, Tensor]:
        requires_grad(self.D, False)
        try:
            self.opt_g.zero_grad(set_to_none=True)
            fake = self._net(self.G, self._lr)
            content = self.content(fake, real)
            with no_sync(self.D):  # D gets no gradient here: nothing to all-reduce
                adv = self.loss.g(self._judge(fake, None))
            loss = content + self.loss_cfg.adv_weight * adv
            loss.backward()
            self.opt_g.step()
        finally:
            requires_grad(self.D, True)
        self._update_ema()
        return {"g_loss": loss.detach(), "content": content.detach(), "g_adv": adv.detach()}
