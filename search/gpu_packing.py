"""`resources.gpus_per_trial: auto`: each trial asks for the GPU share its predicted memory needs.

    charged per trial = predicted peak (spaces.memory, the trial's batch and precision)
                      + resources.gpu_process_overhead_gb (what one training process holds beside
                        its step: CUDA context and kernels, cuBLAS/cuDNN workspaces, allocator slack)
    usable per GPU    = resources.gpu_memory_gb (or, detected, the smallest FREE memory of any GPU
                        on any GPU node) × (1 − gpu_memory_headroom)
    n = min(⌊usable / charged⌋, resources.max_trials_per_gpu, ⌈concurrent trials / GPUs⌉)
    the trial asks Ray for 1/n of a GPU (4 decimals, Ray's resolution: n of them still fit)

The cap keeps time-sliced processes from crowding one GPU (each adds a context and only slows its
neighbours once the GPU is busy); it is at most 1000, so a share is never below 0.001 (Ray would
round a smaller one to 0 GPUs, hide the GPUs from the trial, and it would train on the CPU).
Ray packs fractional requests onto one GPU before the next (bin packing per GPU), so with fewer
trials than n × GPUs the others would idle: the last term spreads them (`spread`, applied by
search.run.check_resources, where the cluster's GPUs are known, and stored in the run's experiment).
Each trial process then holds itself to its share of the usable memory minus the CUDA context
(trainers.device.Runtime.limit_memory: torch.cuda.set_per_process_memory_fraction), which also
bounds cuDNN's autotuning workspaces (they come from the same allocator). A network whose charge
exceeds one GPU's usable memory is infeasible before it starts (the constraint `gpu_memory` in
search.constraints): a single-process trial cannot spread over two GPUs.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from spaces import ArchSpec
from spaces.memory import GiB, Memory, memory

log = logging.getLogger(__name__)

RAY_RESOLUTION = 1e-4  # Ray keeps 4 decimals of a fractional resource


def trial_precision(recipe_precision: str, on_gpu: bool) -> str:
    """The activations' precision a trial will train in (trainers.device: auto = bf16 autocast on a
    GPU with native bf16, fp16 on older ones: both 2 bytes, which is what memory counts)."""
    if recipe_precision == "auto":
        return "bf16" if on_gpu else "fp32"
    return recipe_precision


def predicted(arch: ArchSpec, exp) -> Memory:
    """The predicted peak of one training step of `arch` in experiment `exp` (its batch and precision)."""
    precision = trial_precision(exp.schedule.precision, exp.resources.uses_gpus)
    return memory(arch, exp.data.batch_size, precision)


def charged(arch: ArchSpec, exp) -> float:
    """Bytes one trial of `arch` is charged on its GPU: the step's peak + the per-process overhead."""
    return predicted(arch, exp).peak + exp.resources.gpu_process_overhead_gb * GiB


def usable_bytes(resources) -> float | None:
    if resources.gpu_memory_gb is None:
        return None
    return resources.gpu_memory_gb * GiB * (1 - resources.gpu_memory_headroom)


def trials_per_gpu(charge: float, usable: float, cap: int) -> int | None:
    """How many trials charged `charge` bytes share one GPU (at most `cap`); None when not one fits."""
    if charge > usable:
        return None
    return max(1, min(int(usable // charge), cap))


def gpu_share(n: int) -> float:
    """1/n of a GPU, rounded down to Ray's resolution so that n of them fit; never 0."""
    return max(RAY_RESOLUTION, math.floor(1 / n / RAY_RESOLUTION) / round(1 / RAY_RESOLUTION))


def share_of(arch: ArchSpec, exp) -> tuple[float, int] | None:
    """(GPU share, trials per GPU) of a trial of `arch`; None when the GPU memory is not known yet."""
    usable = usable_bytes(exp.resources)
    if usable is None:
        return None
    n = trials_per_gpu(charged(arch, exp), usable, exp.resources.max_trials_per_gpu)
    return (1.0, 1) if n is None else (gpu_share(n), n)


def planned_trials(exp) -> int:
    """How many trials can run at once at most: the grid's points × repeats × passes, or the samples,
    bounded by max_concurrent_trials."""
    s = exp.search
    trials = exp.to_space().size * s.repeats * s.num_samples if s.algorithm == "grid" else s.num_samples
    return min(trials, exp.resources.max_concurrent_trials or trials)


def spread(exp, gpus: float) -> int:
    """The cap on trials per GPU that spreads this run's trials over `gpus` GPUs (Ray would pile
    them onto the first): ⌈concurrent trials / GPUs⌉, within resources.max_trials_per_gpu."""
    if gpus < 1:
        return exp.resources.max_trials_per_gpu
    return max(1, min(exp.resources.max_trials_per_gpu, math.ceil(planned_trials(exp) / int(gpus))))


def resources_fn(exp):
    """The function of a trial's config that Tune calls for its resources (tune.with_resources)."""
    from ray.tune import PlacementGroupFactory

    from trainers.trial import resolve

    if usable_bytes(exp.resources) is None:
        raise ValueError(
            "resources.gpus_per_trial = auto needs resources.gpu_memory_gb (GiB per GPU) when the "
            "cluster's GPU memory cannot be detected"
        )
    cpus = exp.resources.cpus_per_trial

    def request(config: dict[str, Any]) -> PlacementGroupFactory:
        share, _ = share_of(resolve(config).arch, exp)  # 1.0 if it fits no GPU: filtered out before, never wait forever
        return PlacementGroupFactory([{"CPU": cpus, "GPU": share}])

    return request


def free_gpu_memory_gb() -> float | None:
    """The smallest free memory (GiB) among the GPUs this process sees (torch.cuda.mem_get_info:
    what other processes hold is not free); None without CUDA."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        return None
    return min(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())) / GiB


def detect_gpu_memory_gb(timeout_s: float = 60.0) -> float | None:
    """The smallest free memory (GiB) of any GPU on any alive GPU node; None if no node can tell
    (no CUDA where the GPUs are, e.g. logical GPUs of a test cluster). One probe task per node,
    pinned to it, asking for no GPU and reading every GPU of the node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_gpus=0, num_cpus=0, max_calls=1)
    def probe():
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)  # all the node's GPUs, before CUDA starts in this fresh process
        return free_gpu_memory_gb()

    try:
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("GPU", 0) > 0]
        refs = [
            probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote() for n in nodes
        ]
        answers = ray.get(refs, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 — any failure means: not detected, ask the user
        log.warning("could not detect the GPUs' memory: %s", exc)
        return None
    known = [a for a in answers if a is not None]
    if known and len(known) < len(answers):
        log.warning("%d of %d GPU nodes could not tell their GPUs' memory", len(answers) - len(known), len(answers))
    return min(known) if known else None
