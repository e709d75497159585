"""The training recipe: optimiser, learning-rate schedule, epochs, precision, seed.

Defaults are the papers' (Res3D §3.2, R(2+1)D §4.1): SGD with momentum 0.9, initial LR 0.01 divided
by 10 at fixed steps. Res3D divides every 20k of 90k iterations (≈ every 3 of 15 epochs on
UCF101), R(2+1)D every 10 of 45 epochs; `lr_step_epochs` says which. Warm-up and cosine decay are
there for users who want them. The schedule itself is torch's schedulers, built from these fields
by trainers.loop.make_scheduler.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from pydantic import Field

from spaces.validation import Bool, Int, Number, Str, from_dict, spec

SCHEDULES = ("step", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@spec
class Recipe:
    # how long
    epochs: Int = Field(45, ge=1)
    eval_every: Int = Field(1, ge=1)  # evaluate every N epochs (and always after the last)
    # optimiser (SGD)
    lr: Number = Field(0.01, gt=0)
    momentum: Number = Field(0.9, ge=0)
    weight_decay: Number = Field(1e-4, ge=0)
    nesterov: Bool = False
    # schedule
    schedule: Literal[SCHEDULES] = "step"  # step (÷ gamma every lr_step_epochs), cosine, constant
    lr_step_epochs: Int = Field(10, ge=1)
    lr_gamma: Number = Field(0.1, gt=0)
    warmup_epochs: Int = Field(0, ge=0)  # linear warm-up from lr/10, then the schedule
    # numerics
    precision: Literal[PRECISIONS] = "auto"  # auto: bf16/fp16 autocast on CUDA, fp32 on CPU
    compile: Bool = False  # torch.compile the model
    grad_clip: Number | None = Field(None, gt=0)  # max grad norm; None = off
    label_smoothing: Number = Field(0.0, ge=0)
    zero_init_residual: Bool = False  # each residual block starts as its shortcut (γ = 0 in its last BN)
    # start from these weights: a torchvision state dict or a starch checkpoint (trainers.init_weights)
    init: Str | None = Field(None, min_length=1)
    seed: Int = Field(0, ge=0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        return from_dict(cls, data)
