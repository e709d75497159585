"""The one place that decides device and precision.

    Runtime.select(precision="auto", device=None)
        CUDA (or another torch accelerator) when available: autocast bf16 where the GPU computes it
        natively (compute capability >= 8, Ampere on), fp16 + GradScaler on older GPUs (V100, T4:
        `torch.cuda.is_bf16_supported()` is true there too, by emulation, and slow), channels_last_3d
        memory format, cudnn.benchmark. `Runtime.reason` says why, in every trial's records.
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
measured: the FLOP/s of a dense matmul on the same device and threads, in the dtype and math mode
the trial computes in (fp32 on the CPU; bf16/fp16 under autocast on a GPU; TF32 for fp32 on a GPU
whose convolutions run in TF32), the best of several short probes. A trial's efficiency is the
ratio of the two, never above 1 (trainers.trial: a faster measured pass re-probes, then is capped).

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


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """(whether `device` computes bf16 natively, its name for the records). On CUDA: compute
    capability >= 8.0 (A100, H100, RTX 30xx on); not `torch.cuda.is_bf16_supported()`, whose
    default `including_emulation=True` is true on a V100 or T4 too."""
    if device.type != "cuda":
        return True, device.type
    major, minor = torch.cuda.get_device_capability(device)
    return major >= 8, f"cuda compute capability {major}.{minor}"


@contextlib.contextmanager
def _matmul_tf32():
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def training_flops(macs_per_clip: float) -> float:
    """FLOPs of one training step per clip: 3 (forward + backward) × 2 (FLOPs per MAC) × MACs."""
    return 6.0 * macs_per_clip


@dataclass
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None = no autocast
    channels_last: bool
    scaler: torch.amp.GradScaler | None
    reason: str = ""  # why this precision: recorded as `precision_reason` in every trial's records
    shared: bool = False  # on a share of a GPU (limit_memory): an OOM may be a neighbour's

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
            why = "on request" if precision != "auto" else "auto: the CPU trains in fp32"
            return cls(device, dtype, channels_last=cpu_channels_last(), scaler=None, reason=f"cpu, {why}")
        if accel.type == "cuda":
            torch.backends.cudnn.benchmark = True
        bf16_ok, gpu = native_bf16(accel)
        if precision == "fp32":
            dtype = None
        elif precision == "fp16" or (precision == "auto" and not bf16_ok):
            dtype = torch.float16
        else:
            dtype = torch.bfloat16
        if precision != "auto":
            why = "on request"
        elif bf16_ok:
            why = f"auto: bf16 is native on {gpu}"
        else:
            why = f"auto: fp16 + GradScaler, bf16 is not native on {gpu} (needs compute capability >= 8.0)"
        scaler = torch.amp.GradScaler(accel.type) if dtype == torch.float16 else None
        return cls(accel, dtype, channels_last=accel.type == "cuda", scaler=scaler, reason=f"{gpu}, {why}")

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

    def peak_flops(self, seconds: float = 0.2, size: int | None = None, probes: int = 5) -> float:
        """The dense-matmul FLOP/s this runtime reaches on its device and threads: the machine's limit.

        The best `size`³ matmul of `probes` short probes (after one warm-up), each about
        `seconds / probes` long with a pause of the same length before it, so that a neighbour
        holding the cores at one moment cannot slow every probe: a preempted probe only reads
        slower, and the best is kept. In the convolutions' math mode (`math_mode`): TF32 where
        cuDNN runs fp32 convolutions in TF32."""
        dtype = self.amp_dtype if self.device.type != "cpu" and self.amp_dtype is not None else torch.float32
        if size is None:  # long enough to reach the GEMM's peak, short enough to fit between preemptions
            size = 8192 if self.device.type != "cpu" else 256 if torch.get_num_threads() <= 2 else 1024
        rng = torch.Generator(device=self.device).manual_seed(0)  # its own: the trial's random stream is untouched
        best = float("inf")
        with self.math_mode():
            while True:  # three size² buffers; on a small share of a GPU, halve until they fit its limit
                try:
                    a = torch.randn(size, size, device=self.device, dtype=dtype, generator=rng)
                    b = torch.randn(size, size, device=self.device, dtype=dtype, generator=rng)
                    self._time_mm(a, b)  # warm-up (library load, kernel selection)
                    break
                except RuntimeError as exc:
                    a = b = None
                    if not self.is_oom(exc) or size <= 256:
                        raise
                    self.release()
                    size //= 2
            for _ in range(max(1, probes)):
                time.sleep(seconds / max(1, probes))
                deadline = time.perf_counter() + seconds / max(1, probes)
                while True:
                    best = min(best, self._time_mm(a, b))
                    if time.perf_counter() >= deadline:
                        break
        del a, b
        return 2 * size**3 / best

    def _time_mm(self, a: torch.Tensor, b: torch.Tensor) -> float:
        start = time.perf_counter()
        torch.mm(a, b)
        self.synchronize()
        return time.perf_counter() - start

    def math_mode(self):
        """The math mode the convolutions run in, for the peak probe's matmul: on CUDA in fp32,
        cuDNN computes convolutions in TF32 (`torch.backends.cudnn.allow_tf32`, on by default)
        while matmuls default to IEEE fp32 (`torch.backends.cuda.matmul.allow_tf32`, off), so an
        IEEE probe would understate the limit about 8× on an A100/H100 and overstate efficiency."""
        if self.device.type == "cuda" and self.amp_dtype is None and torch.backends.cudnn.allow_tf32:
            return _matmul_tf32()
        return contextlib.nullcontext()

    def limit_memory(self, share: float, usable_gb: float | None = None) -> dict[str, float]:
        """Hold this process to its `share` of a shared GPU (Ray's fractional GPUs do not limit
        memory): torch's allocator may use share × usable GiB (usable: what packing divided, default
        this GPU's total) minus the CUDA context, which lives outside the allocator
        (spaces.memory.CUDA_CONTEXT_GB). cuDNN's autotuning workspaces come from the same
        allocator, so the limit bounds them too: an algorithm whose workspace does not fit is
        skipped. A whole GPU (share >= 1): no limit (one an earlier trial of a reused actor set is
        lifted). Returns the limit for the records."""
        if self.device.type != "cuda":
            return {}
        if not 0 < share < 1:  # a reused actor may have held an earlier trial to a share: lift it
            torch.cuda.set_per_process_memory_fraction(1.0, self.device)
            return {}
        from spaces.memory import CUDA_CONTEXT_GB

        total = torch.cuda.get_device_properties(self.device).total_memory / 1024**3
        limit = share * (usable_gb or total) - CUDA_CONTEXT_GB
        if limit <= 0:
            raise ValueError(
                f"a GPU share of {share:g} of {usable_gb or total:.2f} GiB leaves nothing beside the "
                f"CUDA context ({CUDA_CONTEXT_GB} GiB); lower resources.max_trials_per_gpu"
            )
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), self.device)
        self.shared = True
        return {"gpu_share": share, "gpu_memory_limit_gb": limit}

    def reset_memory_peaks(self) -> None:
        """Start a new window for `memory_peaks` (after the probe, after each epoch's record)."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def memory_peaks(self) -> dict[str, float]:
        """Peak allocated and reserved GiB since the last reset (CUDA only; {} elsewhere)."""
        if self.device.type != "cuda":
            return {}
        return {
            "measured_memory_gb": torch.cuda.max_memory_allocated(self.device) / 1024**3,
            "measured_reserved_gb": torch.cuda.max_memory_reserved(self.device) / 1024**3,
        }

    def release(self) -> None:
        """Give the allocator's cached blocks back to the GPU (the probe's buffers, a trial's end):
        a reused actor's next trial, or a neighbour on a shared GPU, gets them."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

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
