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
) -> dict[str, Any]:
    setup_started = time.perf_counter()
    distributed = distributed or Distributed.current()
    indexes = indexes or {}
    train_index = indexes.get("train") or build_index(cfg.data, "train")
    test_index = indexes.get("test") or build_index(cfg.data, "test")
    arch, data = align(cfg.arch, cfg.data, train_index.num_classes)
    seed = cfg.recipe.seed
    torch.manual_seed(seed)
    model = build(arch, zero_init_residual=cfg.recipe.zero_init_residual)
    init = {}
    if cfg.recipe.init and state is None:  # a resumed trial has its own weights in the checkpoint
        from trainers.init_weights import initialise

        init = initialise(model, arch, cfg.recipe.init)
    c = cost(arch)
    runtime = Runtime.select(cfg.recipe.precision, device)
    static = {
        **(static or {}),
        **init,
        **_predicted_memory(arch, data.batch_size, runtime),
        "hostname": socket.gethostname(),
        "torch_threads": torch.get_num_threads(),  # intra-op threads (a Ray trial: its CPUs, ray_adapter)
        "started_at": time.time(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "arch_name": arch.name,
        "seed": seed,
        "width": arch.width,
        "params": c.params,
        "gflops": c.flops / 1e9,
        "peak_gflops_per_s": runtime.peak_flops() / 1e9,  # this process's matmul limit (~0.2 s probe)
        "arch": arch.to_dict(),
        "missing_videos": len(train_index.missing) + len(test_index.missing),
    }
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
    try:
        return fit(
            model,
            train_loader=loaders["train"],
            eval_loaders={"clip": loaders["clip"], "video": loaders["video"]},
            recipe=cfg.recipe,
            runtime=runtime,
            report=_timed(report, runtime, macs_per_clip=c.flops),
            state=state,
            static=static,
            protocol=protocol_text(data),
            progress=progress,
            distributed=distributed,
            setup_started=setup_started,
        )
    finally:
        for loader in loaders.values():
            loader.close()


def _timed(report: Report, runtime: Runtime | None = None, macs_per_clip: float | None = None) -> Report:
    """Stamp each record with the wall-clock time it was reported (concurrency and GPU-hours), the
    training pass's achieved FLOP/s and its efficiency (÷ the peak of all workers; the pass's time
    includes waiting for data) and, on CUDA, the peak memory torch allocated so far (beside the
    predicted one)."""
    cuda = runtime is not None and runtime.device.type == "cuda"

    def stamped(record: dict[str, Any], state: dict[str, Any]) -> None:
        record["reported_at"] = time.time()
        if macs_per_clip and record.get("train_clips_per_s"):
            achieved = training_flops(macs_per_clip) * record["train_clips_per_s"] / 1e9
            record["achieved_gflops_per_s"] = achieved
            if record.get("peak_gflops_per_s"):
                record["efficiency"] = achieved / (record["peak_gflops_per_s"] * record.get("workers", 1))
        if cuda:
            record["measured_memory_gb"] = torch.cuda.max_memory_allocated(runtime.device) / GiB
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
