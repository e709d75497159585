"""One trial: an ArchSpec trained on a DataSpec with a Recipe. No Ray here.

    TrialConfig = (arch, data, recipe) ── run_trial(cfg, report) ──► fit(...) ──► report(record, state)

The architecture drives the clips: the data spec's clip length, sampling rate and crop are taken
from the ArchSpec (frames, sampling_rate, crop) and the number of classes from the dataset, so the
two can never disagree. Every record carries params, GFLOPs, width k and the whole ArchSpec, so
analysis never rebuilds a model.

Data parallel: one run_trial per rank, each given its `Distributed` (rank, world size) and device;
the loaders read that rank's shard and the loop keeps the ranks in step (trainers.loop).
DataSpec.batch_size is per rank, so a step sees world_size × batch_size clips; the LR is the
recipe's, not rescaled.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from typing import Any, Callable, Iterable

import torch

from spaces import ArchSpec, build, cost
from spaces.memory import GiB, memory
from spaces.validation import from_dict, spec
from trainers.data.datasets import DataSpec, VideoIndex, build_index
from trainers.data.loader import make_loader
from trainers.device import Runtime, training_flops
from trainers.loop import Distributed, Report, fit
from trainers.recipe import Recipe

log = logging.getLogger(__name__)

# An OOM on a shared GPU may come from a neighbour (Ray's fractional GPUs do not isolate memory):
# the trial goes back to its last checkpoint (or its start) up to this many times, after a pause
# that grows with each retry, before it is recorded as `oom-shared` (not the architecture's `oom`).
SHARED_OOM_RETRIES = 2
SHARED_OOM_WAIT_S = 5.0


@spec
class TrialConfig:
    arch: ArchSpec
    data: DataSpec
    recipe: Recipe = Recipe()

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "data": self.data.to_dict(), "recipe": self.recipe.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrialConfig":
        return from_dict(cls, d, "trial config")


def align(arch: ArchSpec, data: DataSpec, num_classes: int) -> tuple[ArchSpec, DataSpec]:
    """The clip geometry comes from the architecture, the class count from the dataset."""
    data = data.replace(clip_len=arch.frames, sampling_rate=arch.sampling_rate, crop=arch.crop)
    return arch.replace(num_classes=num_classes), data


def protocol_text(data: DataSpec) -> str:
    return (
        f"clip@1: 1 centre clip × 1 centre crop per video; video@k: {data.eval_clips} evenly spaced clips × "
        f"1 centre crop, softmax averaged; clips {data.clip_len}×{data.crop}×{data.crop}, "
        f"sampling rate {data.sampling_rate}"
    )


def run_trial(
    cfg: TrialConfig,
    report: Report,
    *,
    state: dict[str, Any] | None = None,
    indexes: dict[str, VideoIndex] | None = None,  # pre-built (e.g. shared by tune.with_parameters)
    progress: Callable[[Iterable], Iterable] | None = None,
    static: dict[str, Any] | None = None,
    distributed: Distributed | None = None,  # None: from torch.distributed, else one process
    device: torch.device | None = None,  # None: Runtime.select picks
    gpu_share: float = 1.0,  # the fraction of a GPU Ray gave this trial (< 1: the GPU is shared)
    gpu_usable_gb: float | None = None,  # the GPU memory the shares divide (search.gpu_packing)
) -> dict[str, Any]:
    setup_started = time.perf_counter()
    distributed = distributed or Distributed.current()
    indexes = indexes or {}
    train_index = indexes.get("train") or build_index(cfg.data, "train")
    test_index = indexes.get("test") or build_index(cfg.data, "test")
    arch, data = align(cfg.arch, cfg.data, train_index.num_classes)
    seed = cfg.recipe.seed

    def make_model() -> tuple[torch.nn.Module, dict[str, Any]]:
        torch.manual_seed(seed)
        model = build(arch, zero_init_residual=cfg.recipe.zero_init_residual)
        if cfg.recipe.init and state is None:  # a resumed trial has its own weights in the checkpoint
            from trainers.init_weights import initialise

            return model, initialise(model, arch, cfg.recipe.init)
        return model, {}

    model, init = make_model()
    c = cost(arch)
    runtime = Runtime.select(cfg.recipe.precision, device)
    static = {
        **(static or {}),
        **init,
        **runtime.limit_memory(gpu_share, gpu_usable_gb),
        **_predicted_memory(arch, data.batch_size, runtime),
        "precision_reason": runtime.reason,
        "hostname": socket.gethostname(),
        "torch_threads": torch.get_num_threads(),  # intra-op threads (a Ray trial: its CPUs, ray_adapter)
        "started_at": time.time(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "arch_name": arch.name,
        "seed": seed,
        "width": arch.width,
        "params": c.params,
        "gflops": c.flops / 1e9,
        "peak_gflops_per_s": runtime.peak_flops() / 1e9,  # this process's matmul limit (best of 5 probes, ~0.4 s)
        "arch": arch.to_dict(),
        "missing_videos": len(train_index.missing) + len(test_index.missing),
    }
    runtime.release()  # the probe's buffers go back to the GPU; its peak is not the trial's
    runtime.reset_memory_peaks()
    shard = {
        "rank": distributed.rank,
        "world_size": distributed.world_size,
        "pin_memory": runtime.device.type == "cuda",
    }
    loaders = {
        "train": make_loader(data, "train", seed=seed, index=train_index, **shard),
        "clip": make_loader(data, "test", seed=seed, index=test_index, eval_mode="clip", **shard),
        "video": make_loader(data, "test", seed=seed, index=test_index, eval_mode="video", **shard),
    }
    if cfg.recipe.compile:
        # a reused actor's earlier trials left their compiled graphs in Dynamo's cache: each new
        # network would recompile the same forward until Dynamo's recompile limit, then run eager
        torch.compiler.reset()
    retries = SHARED_OOM_RETRIES if runtime.shared else 0
    resume_from, retrying = state, []

    def reporting(record: dict[str, Any], checkpoint_state: dict[str, Any]) -> None:
        """Keep a copy of the last checkpoint; on a shared GPU, hold back an OOM that will be retried."""
        nonlocal resume_from
        if checkpoint_state and retries:
            resume_from = _host_copy(checkpoint_state)  # the live tensors go on training
        attempt = len(retrying)
        if attempt:
            record["oom_retries"] = attempt
        if record.get("status") == "oom" and runtime.shared:
            if attempt < retries:
                retrying.append(record)
                return
            record["status"] = "oom-shared"  # fit returns this same record
            record["reason"] = (
                f"out of memory on a GPU shared with other trials (share {static.get('gpu_share')}), "
                f"after {attempt} retries from the last checkpoint: {record.get('reason')}"
            )
        report(record, checkpoint_state)

    try:
        while True:
            tried = len(retrying)
            result = fit(
                model,
                train_loader=loaders["train"],
                eval_loaders={"clip": loaders["clip"], "video": loaders["video"]},
                recipe=cfg.recipe,
                runtime=runtime,
                report=_timed(reporting, runtime, macs_per_clip=c.flops),
                state=resume_from,
                static=static,
                protocol=protocol_text(data),
                progress=progress,
                distributed=distributed,
                setup_started=setup_started,
            )
            if len(retrying) == tried:
                return result
            # an OOM on a shared GPU may be a neighbour's: not the architecture's fault until it repeats
            log.warning("out of memory on a shared GPU; retry %d of %d from the last checkpoint", tried + 1, retries)
            runtime.release()
            time.sleep(SHARED_OOM_WAIT_S * (tried + 1))
            setup_started = time.perf_counter()  # the retry's set-up phase starts here
            if resume_from is None:  # no checkpoint yet: the trial's own start, same seed
                model = make_model()[0]
    finally:
        for loader in loaders.values():
            loader.close()
        runtime.release()  # a reused actor's next trial (or a neighbour) gets this trial's cached memory


def _host_copy(obj: Any) -> Any:
    """A copy of a checkpoint state on the host (a state_dict holds the live parameters)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _host_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_host_copy(v) for v in obj)
    return obj


def _timed(report: Report, runtime: Runtime | None = None, macs_per_clip: float | None = None) -> Report:
    """Stamp each record with the wall-clock time it was reported (concurrency and GPU-hours), the
    training pass's achieved FLOP/s and its efficiency (÷ the peak of all workers; the pass's time
    includes waiting for data) and, on CUDA, the epoch's peak allocated and reserved memory (beside
    the predicted one; the peaks are reset after each record).

    Efficiency is never above 1: a pass measured faster than the peak probe allows means the probe
    was slowed (preempted), so the peak is probed again and the higher value kept for the trial
    (`peak_gflops_per_s`); if the pass is still faster, efficiency is recorded as 1 with
    `efficiency_capped: true` (the measured `achieved_gflops_per_s` is kept as it is)."""
    peak_seen: list[float] = []  # the trial's best peak (GFLOP/s per worker), raised by a re-probe

    def stamped(record: dict[str, Any], state: dict[str, Any]) -> None:
        record["reported_at"] = time.time()
        if runtime is not None:
            record.update(runtime.memory_peaks())  # read before a re-probe could add its buffers
        if macs_per_clip and record.get("train_clips_per_s"):
            achieved = training_flops(macs_per_clip) * record["train_clips_per_s"] / 1e9
            record["achieved_gflops_per_s"] = achieved
            if record.get("peak_gflops_per_s"):
                workers = record.get("workers", 1)
                peak = max([record["peak_gflops_per_s"], *peak_seen])
                if achieved > peak * workers and runtime is not None:
                    peak = max(peak, runtime.peak_flops() / 1e9)
                    runtime.release()
                peak_seen[:] = [peak]
                record["peak_gflops_per_s"] = peak
                record["efficiency"] = min(1.0, achieved / (peak * workers))
                record["efficiency_capped"] = achieved > peak * workers
        if runtime is not None:
            runtime.reset_memory_peaks()
        report(record, state)

    return stamped


def _predicted_memory(arch: ArchSpec, batch_size: int, runtime: Runtime) -> dict[str, Any]:
    """spaces.memory's peak for this trial's batch and precision (what gpus_per_trial: auto packs by)."""
    precision = runtime.precision if runtime.precision in ("bf16", "fp16") else "fp32"
    return {"predicted_memory_gb": memory(arch, batch_size, precision).peak / GiB}


def resolve(config: dict[str, Any]) -> TrialConfig:
    """A Ray Tune trial config (or `starch train` config) → TrialConfig.

    The architecture comes in one of two forms, plus "data" and "recipe":
        {"candidate": {"arch", "seed", "axes", "repeat", "params", "gflops"}}   the search's trial,
            resolved once on the driver (search.constraints.Candidate): arch and seed are used as they are
        {"arch": {...ArchSpec...}, "budget": "33.2M" | None, "width_rule": "nearest", "repeat": 0}
            `starch train`: k solved here if budget; the repeat is added to the recipe's seed
    Run folders written before the driver resolved searcher samples hold {"axes", "space"}, and
    grid candidates without "seed": still read, so `starch resume` continues them.
    """
    from spaces.width import solve_width

    config = dict(config)
    candidate = config.pop("candidate", None)
    axes, space = config.pop("axes", None), config.pop("space", None)
    budget, rule = config.pop("budget", None), config.pop("width_rule", "nearest")
    repeat, seed = config.pop("repeat", 0), None
    if candidate is not None:
        config["arch"] = candidate["arch"]
        repeat, seed = candidate.get("repeat", 0), candidate.get("seed")
    elif "arch" not in config:
        if axes is None or space is None:
            raise ValueError("trial config needs 'candidate' (from starch search) or 'arch' (starch train)")
        from spaces.space import Space  # an older run folder's searcher sample

        config["arch"] = Space.cached(space["axes"], space.get("width_rule", "nearest")).to_arch(axes).to_dict()
    cfg = TrialConfig.from_dict(config)
    if budget is not None:
        cfg = dataclasses.replace(cfg, arch=cfg.arch.replace(width=solve_width(cfg.arch, budget, rule)))
    if seed is None:
        seed = cfg.recipe.seed + int(repeat or 0)
    return dataclasses.replace(cfg, recipe=dataclasses.replace(cfg.recipe, seed=int(seed)))
