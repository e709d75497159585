"""The one place that decides device and precision.

    Runtime.select(precision="auto", device=None)
        CUDA (or another torch accelerator) when available: autocast bf16 (fp16 + GradScaler where bf16
        is unsupported), channels_last_3d memory format, cudnn.benchmark.
        Otherwise the CPU in fp32 (bf16 autocast on request), channels_last_3d where oneDNN is there.

channels_last_3d on the CPU is a measured rule, not a per-machine probe (a probe would make the
trained numbers depend on how busy the machine was when it ran): with oneDNN, the demo's networks'
training step took 0.63-0.87 of its contiguous time on an AVX-512 CPU and 0.64-0.90 on an AVX2 one
(median of 3 interleaved A/B pairs, one thread, batch 16, 8×32×32: r3d_18 k=8, mc3 k=13,
r2plus1d_18 k=8, f-r2d k=13, rmc3 k=8; `pytest -m benchmark -s tests/benchmarks/test_cpu_fast_paths.py`).
bf16 autocast on the CPU is on request only: faster per step where the CPU has bf16 units, 14-19×
slower where it has none, and with the demo's recipe 11 of 18 demo trials diverged under it (README,
"Fast paths, efficiency and the search driver"). STARCH_CHANNELS_LAST=0 or 1
overrides the rule (for A/B runs, or a CPU where the benchmark says otherwise). The memory format
changes the order of float sums, so a run's numbers differ from a contiguous run's within seed noise.

Efficiency: `training_flops(macs)` is the FLOPs of one training step per clip, 3 × 2 × MACs
(spaces.cost counts multiply-accumulates per clip, the papers' convention; × 2 FLOPs per MAC, × 3
for the forward pass plus a backward pass that costs about twice the forward, as in Kaplan et al.
2020 and nanoGPT's `estimate_mfu`). `Runtime.peak_flops()` is the machine's limit for this runtime,
measured: the FLOP/s of a dense matmul on the same device and threads, in the dtype the trial
computes in (fp32 on the CPU; bf16/fp16 under autocast on a GPU). A trial's efficiency is the
ratio of the two.

Under Ray Tune, each trial sees only its own GPUs through CUDA_VISIBLE_DEVICES, so the current
accelerator device is the trial's. A data-parallel worker is told its device instead (Ray Train's
`get_device()`, passed in by the Ray adapter); the precision rules stay the same.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import torch


def _accelerator() -> torch.device | None:
    if hasattr(torch, "accelerator"):  # torch >= 2.6
        return torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else None


def cpu_channels_last() -> bool:
    """Whether CPU trials use channels_last_3d: the measured rule above, or STARCH_CHANNELS_LAST."""
    forced = os.environ.get("STARCH_CHANNELS_LAST", "").strip()
    if forced:
        if forced not in ("0", "1"):
            raise ValueError(f"STARCH_CHANNELS_LAST must be 0 or 1, got {forced!r}")
        return forced == "1"
    return torch.backends.mkldnn.is_available()


def training_flops(macs_per_clip: float) -> float:
    """FLOPs of one training step per clip: 3 (forward + backward) × 2 (FLOPs per MAC) × MACs."""
    return 6.0 * macs_per_clip


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
            return cls(device, dtype, channels_last=cpu_channels_last(), scaler=None)
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
        """(B, C, T, H, W) on the device in the model's memory format, in one copy (none when the
        batch is already there: the loader's batches are channels-last, on the CPU). Non-blocking:
        from page-locked memory (the loader's `pin_memory` on CUDA) the copy overlaps the step."""
        fmt = torch.channels_last_3d if self.channels_last else torch.contiguous_format
        return clips.to(self.device, memory_format=fmt, non_blocking=True)

    def peak_flops(self, seconds: float = 0.2, size: int | None = None) -> float:
        """The dense-matmul FLOP/s this runtime reaches on its device and threads (the best of as
        many `size`³ matmuls as fit in about `seconds`, after one warm-up): the machine's limit."""
        dtype = self.amp_dtype if self.device.type != "cpu" and self.amp_dtype is not None else torch.float32
        if size is None:  # long enough to reach the GEMM's peak, short enough to fit between preemptions
            size = 8192 if self.device.type != "cpu" else 256 if torch.get_num_threads() <= 2 else 1024
        rng = torch.Generator(device=self.device).manual_seed(0)  # its own: the trial's random stream is untouched
        a = torch.randn(size, size, device=self.device, dtype=dtype, generator=rng)
        b = torch.randn(size, size, device=self.device, dtype=dtype, generator=rng)
        best, deadline = float("inf"), None
        for i in range(1000):
            start = time.perf_counter()
            torch.mm(a, b)
            self.synchronize()
            elapsed = time.perf_counter() - start
            if i == 0:  # warm-up (library load, kernel selection)
                deadline = time.perf_counter() + seconds
                continue
            best = min(best, elapsed)
            if time.perf_counter() >= deadline:
                break
        return 2 * size**3 / best

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @staticmethod
    def is_oom(exc: BaseException | None) -> bool:
        return (
            isinstance(exc, torch.OutOfMemoryError)
            if hasattr(torch, "OutOfMemoryError")
            else "out of memory" in str(exc)
        )
