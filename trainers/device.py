"""The one place that decides device and precision.

    Runtime.select(precision="auto", device=None)
        CUDA (or another torch accelerator) when available: autocast bf16 (fp16 + GradScaler where bf16
        is unsupported), channels_last_3d memory format, cudnn.benchmark.
        Otherwise the CPU in fp32 (bf16 autocast on request).

Under Ray Tune, each trial sees only its own GPUs through CUDA_VISIBLE_DEVICES, so the current
accelerator device is the trial's. A data-parallel worker is told its device instead (Ray Train's
`get_device()`, passed in by the Ray adapter); the precision rules stay the same.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


def _accelerator() -> torch.device | None:
    if hasattr(torch, "accelerator"):  # torch >= 2.6
        return torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else None


@dataclass
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None = no autocast
    channels_last: bool
    scaler: torch.amp.GradScaler | None

    @classmethod
    def select(cls, precision: str = "auto", device: torch.device | None = None) -> "Runtime":
        """device None: the current accelerator, else the CPU; otherwise exactly that device."""
        if device is None:
            accel = _accelerator()
        else:
            device = torch.device(device)
            accel = None if device.type == "cpu" else device
        if accel is None:
            device = torch.device("cpu")
            dtype = torch.bfloat16 if precision == "bf16" else None
            if precision == "fp16":
                raise ValueError("precision 'fp16' needs a GPU; on the CPU use 'bf16' or 'fp32'")
            return cls(device, dtype, channels_last=False, scaler=None)
        if accel.type == "cuda":
            torch.backends.cudnn.benchmark = True
        bf16_ok = accel.type != "cuda" or torch.cuda.is_bf16_supported()
        if precision == "fp32":
            dtype = None
        elif precision == "fp16" or (precision == "auto" and not bf16_ok):
            dtype = torch.float16
        else:
            dtype = torch.bfloat16
        scaler = torch.amp.GradScaler(accel.type) if dtype == torch.float16 else None
        return cls(accel, dtype, channels_last=accel.type == "cuda", scaler=scaler)

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        return model

    def to_device(self, clips: torch.Tensor) -> torch.Tensor:
        clips = clips.to(self.device, non_blocking=True)  # (B, C, T, H, W)
        if self.channels_last:
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        return clips

    @staticmethod
    def is_oom(exc: BaseException | None) -> bool:
        return isinstance(exc, torch.OutOfMemoryError) if hasattr(torch, "OutOfMemoryError") else \
            "out of memory" in str(exc)
