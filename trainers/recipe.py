"""The training recipe: optimiser, learning-rate schedule, epochs, precision, seed.

Defaults are the papers' (Res3D §3.2, R(2+1)D §4.1): SGD with momentum 0.9, initial LR 0.01 divided
by 10 at fixed steps. Res3D divides every 20k of 90k iterations (≈ every 3 of 15 epochs on
UCF101), R(2+1)D every 10 of 45 epochs; `lr_step_epochs` says which. Warm-up and cosine decay are
there for users who want them. The schedule itself is torch's schedulers, built from these fields
by trainers.loop.make_scheduler.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

SCHEDULES = ("step", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Recipe:
    # how long
    epochs: int = 45
    eval_every: int = 1  # evaluate every N epochs (and always after the last)
    # optimiser (SGD)
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    # schedule
    schedule: str = "step"  # step (÷ gamma every lr_step_epochs), cosine, constant
    lr_step_epochs: int = 10
    lr_gamma: float = 0.1
    warmup_epochs: int = 0  # linear warm-up from lr/10, then the schedule
    # numerics
    precision: str = "auto"  # auto: bf16/fp16 autocast on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the model
    grad_clip: float | None = None  # max grad norm; None = off
    label_smoothing: float = 0.0
    zero_init_residual: bool = False  # each residual block starts as its shortcut (γ = 0 in its last BN)
    init: str | None = (
        None  # start from these weights: a torchvision state dict or a starch checkpoint (trainers.init_weights)
    )
    seed: int = 0

    def __post_init__(self) -> None:
        _int("epochs", self.epochs, 1)
        _int("eval_every", self.eval_every, 1)
        _int("lr_step_epochs", self.lr_step_epochs, 1)
        _int("warmup_epochs", self.warmup_epochs, 0)
        _int("seed", self.seed, 0)
        for name in ("lr", "lr_gamma"):
            _number(name, getattr(self, name), positive=True)
        for name in ("momentum", "weight_decay", "label_smoothing"):
            _number(name, getattr(self, name), positive=False)
        if self.grad_clip is not None:
            _number("grad_clip", self.grad_clip, positive=True)
        if self.init is not None and (not isinstance(self.init, str) or not self.init):
            raise ValueError(f"Recipe.init must be a path to a weights file, got {self.init!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Recipe.schedule = {self.schedule!r} is not valid; valid: {SCHEDULES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"Recipe.precision = {self.precision!r} is not valid; valid: {PRECISIONS}")
        for name in ("nesterov", "compile", "zero_init_residual"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Recipe.{name} must be true or false, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Recipe: unknown field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**data)


def _int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Recipe.{name} must be an integer >= {minimum}, got {value!r}")


def _number(name: str, value: Any, *, positive: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        raise ValueError(f"Recipe.{name} must be a number {'> 0' if positive else '>= 0'}, got {value!r}")
