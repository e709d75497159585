"""`resources.gpus_per_trial: auto`: each trial asks for the GPU fraction its predicted memory needs.

    predicted peak (spaces.memory, the trial's batch size and precision)
        ÷ usable GPU memory (resources.gpu_memory_gb or detected, minus gpu_memory_headroom)
        → n = ⌊usable / peak⌋ trials fit on one GPU → the trial asks for 1/n of a GPU

so small networks pack several to a GPU and big ones get a whole one. The request goes through
Ray Tune's per-trial resources (`tune.with_resources` with a function of the trial's config); a
network whose peak exceeds one GPU's usable memory is infeasible before it starts (the constraint
`gpu_memory` in search.constraints), since a single-process trial cannot spread over two GPUs.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from spaces import ArchSpec
from spaces.memory import GiB, Memory, memory

log = logging.getLogger(__name__)


def trial_precision(recipe_precision: str, on_gpu: bool) -> str:
    """The activations' precision a trial will train in (trainers.device: auto = bf16 autocast on CUDA)."""
    if recipe_precision == "auto":
        return "bf16" if on_gpu else "fp32"
    return recipe_precision


def predicted(arch: ArchSpec, exp) -> Memory:
    """The predicted peak of one training step of `arch` in experiment `exp` (its batch and precision)."""
    precision = trial_precision(exp.schedule.precision, exp.resources.uses_gpus)
    return memory(arch, exp.data.batch_size, precision)


def usable_bytes(resources) -> float | None:
    if resources.gpu_memory_gb is None:
        return None
    return resources.gpu_memory_gb * GiB * (1 - resources.gpu_memory_headroom)


def gpu_fraction(peak: int, usable: float) -> float | None:
    """1/n of a GPU when n such trials fit in `usable` bytes; None when not even one fits."""
    if peak > usable:
        return None
    n = int(usable // peak)
    return math.floor(1e4 / n) / 1e4  # Ray keeps 4 decimals of fractional resources: n of them still fit


def resources_fn(exp):
    """The function of a trial's config that Tune calls for its resources (tune.with_resources)."""
    from ray.tune import PlacementGroupFactory

    from trainers.trial import resolve

    usable = usable_bytes(exp.resources)
    if usable is None:
        raise ValueError(
            "resources.gpus_per_trial = auto needs resources.gpu_memory_gb (GiB per GPU) when the "
            "cluster's GPU memory cannot be detected"
        )
    cpus = exp.resources.cpus_per_trial

    def request(config: dict[str, Any]) -> PlacementGroupFactory:
        arch = resolve(config).arch
        fraction = gpu_fraction(predicted(arch, exp).peak, usable)
        if fraction is None:  # filtered out before it became a trial; never wait forever for it
            fraction = 1.0
        return PlacementGroupFactory([{"CPU": cpus, "GPU": fraction}])

    return request


def detect_gpu_memory_gb(timeout_s: float = 60.0) -> float | None:
    """The memory (GiB) of the smallest GPU on the node a probe task lands on; None if unknown (no
    CUDA where the GPU is, e.g. logical GPUs of a test cluster). One node answers: on a cluster of
    mixed GPUs set resources.gpu_memory_gb to the smallest."""
    import ray

    @ray.remote(num_gpus=0.01, num_cpus=0)
    def probe():
        import torch

        if not torch.cuda.is_available():
            return None
        return min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())) / GiB

    try:
        return ray.get(probe.remote(), timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 — any failure means: not detected, ask the user
        log.warning("could not detect the GPUs' memory: %s", exc)
        return None
