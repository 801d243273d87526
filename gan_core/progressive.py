"""Progressive growing (ProGAN, Karras et al. 2018): the schedule, the fading of real images and
the training loop that drives both.

The stage (resolution, fade-in alpha, phase index) is a pure function of the images seen, so a
run resumed from any checkpoint, a phase boundary included, continues exactly. Phases: 0 is 4x4
stable; then for each doubling k = 1, 2, ... phase 2k-1 fades the new block in linearly over
`fade_images` and phase 2k trains it stably for `stable_images`; the last phase lasts until the
run ends.

G always outputs, and D always takes, images at the final resolution: a stage's image is
computed at its resolution and nearest-upsampled (as the original code does), so losses, the
gradient penalty, the EMA and every metric see one shape through the whole run.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from .training import GANTraining, unwrap


@dataclass(frozen=True)
class Stage:
    level: int  # resolution 4 * 2**level
    alpha: float  # weight of the newest block; 1 outside a fade-in
    phase: int

    @property
    def resolution(self) -> int:
        return 4 << self.level


@dataclass(frozen=True)
class ProgressiveSchedule:
    final_resolution: int
    fade_images: int
    stable_images: int

    @property
    def levels(self) -> int:
        """Doublings from 4x4 to the final resolution."""
        return self.final_resolution.bit_length() - 3

    @property
    def growth_images(self) -> int:
        """Images until the final resolution has been faded in and stabilised once."""
        return self.stable_images + self.levels * (self.fade_images + self.stable_images)

    def at(self, images_seen: int) -> Stage:
        if images_seen < self.stable_images:
            return Stage(0, 1.0, 0)
        t = images_seen - self.stable_images
        period = self.fade_images + self.stable_images
        level = 1 + t // period
        if level > self.levels:
            return Stage(self.levels, 1.0, 2 * self.levels)
        within = t % period
        if within < self.fade_images:
            return Stage(level, within / self.fade_images, 2 * level - 1)
        return Stage(level, 1.0, 2 * level)


def schedule_for(cfg) -> ProgressiveSchedule:
    p = cfg.progressive
    return ProgressiveSchedule(cfg.data.image_size, p.fade_images, p.stable_images)


def downsample(x: Tensor, resolution: int) -> Tensor:
    f = x.shape[-1] // resolution
    return F.avg_pool2d(x, f) if f > 1 else x


def upsample(x: Tensor, size: int) -> Tensor:
    f = size // x.shape[-1]
    return F.interpolate(x, scale_factor=f, mode="nearest") if f > 1 else x


def at_resolution(x: Tensor, resolution: int) -> Tensor:
    """Full-size images as a stage at `resolution` sees them: averaged down, then blown back up."""
    return upsample(downsample(x, resolution), x.shape[-1])


def fade_reals(x: Tensor, stage: Stage) -> Tensor:
    """Real images faded exactly as G's output: during a fade-in, a lerp between the previous
    resolution (upsampled) and the new one; returned at full size."""
    r = stage.resolution
    xr = downsample(x, r)
    if stage.alpha < 1:
        coarse = upsample(F.avg_pool2d(xr, 2), r)
        xr = coarse + stage.alpha * (xr - coarse)
    return upsample(xr, x.shape[-1])


class ProgressiveGANTraining(GANTraining):
    """GANTraining whose G, D and G_ema follow the schedule by images seen; reals are faded the
    same way. Both optimizers' state is reset when the resolution changes (the original's
    reset_opt_for_new_lod): Adam's moments of the old stage do not fit the new network.
    `completed_resolution` is the resolution whose last phase the latest step finished (else
    None), for the per-resolution samples and metrics."""

    def __init__(self, *args, schedule: ProgressiveSchedule, **kwargs):
        super().__init__(*args, **kwargs)
        self.schedule = schedule
        self.opt_resolution = schedule.at(0).resolution  # the stage the Adam moments belong to
        self.completed_resolution: int | None = None
        self.set_stage(schedule.at(0))

    def set_stage(self, stage: Stage) -> None:
        for m in (unwrap(self.G), unwrap(self.D), self.G_ema):
            if m is not None:
                m.set_stage(stage.level, stage.alpha)

    @property
    def stage(self) -> Stage:
        return self.schedule.at(self.images_seen)

    def step(self, real: Tensor, z_gen=None, y: Tensor | None = None) -> dict[str, Tensor]:
        stage = self.stage
        self.set_stage(stage)
        if stage.resolution != self.opt_resolution:
            for opt in (self.opt_g, self.opt_d):
                opt.state.clear()
            self.opt_resolution = stage.resolution
        out = super().step(fade_reals(real, stage), z_gen, y)
        finished = self.stage.resolution != stage.resolution
        self.completed_resolution = stage.resolution if finished else None
        return out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "opt_resolution": self.opt_resolution}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.opt_resolution = state["opt_resolution"]
        self.set_stage(self.stage)
