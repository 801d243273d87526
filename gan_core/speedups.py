"""The device-dependent speed switches of `train` (precision, channels_last, fused_adam,
grad_bucket_view, compile) resolved for the device a worker trains on, and applied to G and D.

"auto" turns a switch on for CUDA and leaves it off on CPU, where each one measured slower or no
faster (docs/performance.md). None of them changes the numerics except bf16, which runs G's and
D's forwards under autocast while every loss is computed in fp32 (GANTraining casts the nets'
outputs back); bf16 keeps fp32's exponent range, so no GradScaler is needed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Speedups:
    autocast: torch.dtype | None  # the forwards' autocast dtype; None: fp32
    channels_last: bool  # conv weights and image batches in NHWC
    fused_adam: bool  # one fused Adam kernel per step instead of per-parameter updates
    bucket_view: bool  # DDP gradient_as_bucket_view: grads live in the all-reduce buckets
    compile: bool  # torch.compile of G, and of D unless a penalty needs its double backward
    pin_memory: bool  # batches pinned on the host, copied to the GPU without blocking


def resolve(train, device_type: str, cuda_bf16: bool | None = None) -> Speedups:
    """The switches for a worker on `device_type` ("cpu" or "cuda"); `cuda_bf16`: whether the
    GPU computes in bf16 (Ampere or newer), asked of torch when None."""
    cuda = device_type == "cuda"

    def switch(value) -> bool:
        return cuda if value == "auto" else value

    precision = train.precision
    if precision == "auto":
        if cuda and cuda_bf16 is None:
            cuda_bf16 = torch.cuda.is_bf16_supported()
        precision = "bf16" if cuda and cuda_bf16 else "fp32"
    return Speedups(autocast=torch.bfloat16 if precision == "bf16" else None,
                    channels_last=switch(train.channels_last),
                    fused_adam=switch(train.fused_adam),
                    bucket_view=switch(train.grad_bucket_view),
                    compile=train.compile, pin_memory=cuda)


def prepare_models(G: nn.Module, D: nn.Module, s: Speedups, d_double_backward: bool) -> None:
    """In place, before DDP wraps them: memory format, then compilation (nn.Module.compile keeps
    the modules' types and state-dict keys, so checkpoints do not change)."""
    if s.channels_last:
        for m in (G, D):
            m.to(memory_format=torch.channels_last)  # only 4-D (conv) weights change
    if s.compile:
        G.compile()
        if not d_double_backward:  # torch.compile has no double backward (R1, gradient penalty)
            D.compile()


def ddp_kwargs(s: Speedups) -> dict:
    return {"gradient_as_bucket_view": s.bucket_view}


def as_input(x: Tensor, s: Speedups) -> Tensor:
    """A real image batch in the models' memory format."""
    return x.contiguous(memory_format=torch.channels_last) if s.channels_last and x.dim() == 4 else x


def host_to_device(t: Tensor, device) -> Tensor:
    """A CPU tensor (z, a draw of a seeded CPU generator) on `device`. A pageable host-to-GPU copy
    waits for the GPU's queue to drain (a host sync every step); a pinned one does not."""
    if device is None or torch.device(device).type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)
