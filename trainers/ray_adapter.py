"""The only trainers module that imports Ray: the trial loop as a Ray Tune function trainable.

    trainable = make_trainable(workers_per_trial=W, use_gpu=…, cpus_per_worker=…, gpus_per_worker=…, run_dir=…)
    tuner = Tuner(tune.with_parameters(trainable, indexes=indexes), param_space={"arch": …, "data": …})

W = 1: the Tune trial trains by itself (`trainable`). Each epoch the loop's record goes to
`tune.report(metrics, checkpoint=…)`, so ASHA can stop the trial early and a trial restarted after
a failure (or on another node) continues from its last checkpoint via `tune.get_checkpoint()`.

W > 1 (Ray Train V2 inside Tune): the Tune trial is only a driver. It fits a TorchTrainer whose W
workers each run the same loop on 1/W of every epoch, in step under DDP (Ray's TorchConfig starts
the process group: gloo on CPUs, nccl on GPUs):

    Tune trial (driver, DRIVER_CPUS) ── TorchTrainer.fit ──► worker 0 … worker W-1  (run_trial)
         ▲                                                      │ ray.train.report, once per epoch
         └──── TuneReportCallback: rank 0's record, one Tune result per epoch ◄──┘

Only rank 0 reports a checkpoint; it is stored in the trial's Train run, RUN_DIR/train/<trial id>
(the run folder is given by the driver, the trial id by `tune.get_context()`: Ray's documented
Train-inside-Tune pattern, public APIs only), and its path reaches Tune as the metric
`checkpoint_path` (Tune itself holds no checkpoint for these trials). The run's name and place
are stable across restarts, so a trial that Tune restarts (FailureConfig) or restores
(Tuner.restore) resumes: Ray Train finds its own run snapshot and each worker gets the last
checkpoint from `ray.train.get_checkpoint()`.

Large read-only objects (the video index) arrive through `tune.with_parameters` (Ray's object
store), not through the config; a data-parallel driver passes them on to its workers.
"""

from __future__ import annotations

import math
import tempfile
from typing import Any, Callable

import ray
import ray.train
import ray.train.torch
import torch
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from trainers import checkpoint
from trainers.data.datasets import VideoIndex
from trainers.device import Runtime
from trainers.loop import Distributed
from trainers.resources import WorkerResources
from trainers.trial import resolve, run_trial

# A data-parallel trial's Tune actor only waits on Ray Train; it asks for a sliver of a CPU so that
# it never takes a core or a GPU from the training workers. Tune may then start more drivers than
# the cluster can train: cap them with TuneConfig(max_concurrent_trials = GPUs // (W × GPUs/worker)).
DRIVER_CPUS = 0.05
TRAIN_RUNS = "train"  # RUN_DIR/train/<trial id>: the Train runs of data-parallel trials


def _load(restored) -> dict[str, Any] | None:
    if restored is None:
        return None
    with restored.as_directory() as directory:
        return checkpoint.load(directory)


def _report(record: dict[str, Any], state: dict[str, Any]) -> None:
    if not state:
        tune.report(record)
        return
    with tempfile.TemporaryDirectory(prefix="starch-ckpt-") as directory:
        checkpoint.save(directory, state)
        tune.report(record, checkpoint=tune.Checkpoint.from_directory(directory))


def use_assigned_cpus() -> int:
    """Torch's intra-op threads = the CPUs Ray assigned to this process (floor, at least 1), and
    that number. Ray sets OMP_NUM_THREADS so only where the variable is unset and before torch
    reads it; set here, a trial never computes on more cores than it holds, whatever the
    environment or an earlier trial of a reused actor left. Measured on 2 cores: two one-thread
    trials side by side, not one two-thread trial (docs/benchmarks.md)."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    threads = max(1, math.floor(cpus)) if cpus else torch.get_num_threads()
    torch.set_num_threads(threads)
    return threads


def trainable(
    config: dict[str, Any], indexes: dict[str, VideoIndex] | None = None, gpu_usable_gb: float | None = None
) -> None:
    """The single-process trial (W = 1): the loop runs inside the Tune trial's actor; on a share
    of a GPU it holds itself to that share of `gpu_usable_gb` (Runtime.limit_memory)."""
    use_assigned_cpus()
    cfg = resolve(config)
    state = _load(tune.get_checkpoint())
    resumed_from = state["epoch"] if state else 0
    gpus = ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0)  # a fraction under gpus_per_trial: auto
    run_trial(
        cfg,
        _report,
        state=state,
        indexes=indexes,
        static={"resumed_from_epoch": resumed_from, "gpus": gpus},
        gpu_share=gpus or 1.0,
        gpu_usable_gb=gpu_usable_gb,
    )


# -- data parallel (W > 1)


def _train_report(record: dict[str, Any], state: dict[str, Any]) -> None:
    """Called by every worker once per epoch (Ray Train waits for all); rank 0 adds the checkpoint."""
    if not state:
        ray.train.report(record)
        return
    with tempfile.TemporaryDirectory(prefix="starch-ckpt-") as directory:
        checkpoint.save(directory, state)
        ray.train.report(record, checkpoint=ray.train.Checkpoint.from_directory(directory))


def _train_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: the trial loop on this rank's shard, on the device Ray gave it."""
    use_assigned_cpus()
    context = ray.train.get_context()
    distributed = Distributed(rank=context.get_world_rank(), world_size=context.get_world_size())
    state = _load(ray.train.get_checkpoint())
    resumed_from = state["epoch"] if state else 0
    run_trial(
        resolve(loop_config["config"]),
        _train_report,
        state=state,
        indexes=loop_config["indexes"],
        static={"resumed_from_epoch": resumed_from},
        distributed=distributed,
        device=ray.train.torch.get_device(),
    )


def fit_data_parallel(
    config: dict[str, Any],
    indexes: dict[str, VideoIndex] | None,
    *,
    workers: int,
    use_gpu: bool,
    per_worker: dict[str, float],
    run_dir: str,
    loop: Callable[[dict], None] = _train_worker,
) -> None:
    """Fit the trial's TorchTrainer of `workers` ranks running `loop`, its Train run stored under
    `run_dir` (the Tune run folder: local, NFS or a URI). A rank that runs out of GPU
    memory ends the trial with a last result of status 'oom' (as a single-process trial does),
    not with an error Tune would retry: the same batch on the same GPU runs out again."""
    trainer = ray.train.torch.TorchTrainer(
        loop,
        train_loop_config={"config": config, "indexes": indexes},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=per_worker),
        run_config=train_run_config(run_dir, tune.get_context().get_trial_id()),
    )
    try:
        trainer.fit()
    except ray.train.TrainingFailedError as exc:
        reason = oom_reason(exc, workers)
        if reason is None:
            raise
        tune.report({"status": "oom", "reason": reason, "workers": workers})


def oom_reason(exc: BaseException, workers: int) -> str | None:
    """'out of memory on rank r of W: <torch's message>' when a rank of a failed Train run ran out
    of GPU memory, else None."""
    for rank, failure in sorted((getattr(exc, "worker_failures", None) or {}).items()):
        cause = getattr(failure, "cause", None) or failure  # Ray wraps a worker's exception
        if Runtime.is_oom(failure) or Runtime.is_oom(cause):
            message = str(cause).strip().splitlines()
            return f"out of memory on rank {rank} of {workers}: {message[0] if message else type(cause).__name__}"
    return None


def train_run_config(run_dir: str, trial_id: str) -> ray.train.RunConfig:
    """The Train run of one Tune trial: RUN_DIR/train/<trial id>, the same on every attempt and on
    every node (the run folder is shared storage on a cluster), so Ray Train resumes its own run.
    Not the Tune trial's folder: Tune's public context names only its node-local staging copy."""
    return ray.train.RunConfig(
        name=trial_id, storage_path=f"{str(run_dir).rstrip('/')}/{TRAIN_RUNS}", callbacks=[TuneReportCallback()]
    )


def trial_resources(
    *, workers_per_trial: int = 1, use_gpu: bool = False, cpus_per_worker: float = 1, gpus_per_worker: float = 0
) -> dict[str, float]:
    """What the Tune trial itself requests (the `tune.with_resources` spec).

    W = 1: the trial trains, so it requests one worker's CPUs and GPUs.
    W > 1: the trial is a driver and requests DRIVER_CPUS only; its Train workers request
    W × (cpus_per_worker CPUs + gpus_per_worker GPUs) from Ray Train when the run starts, all at
    once (a placement group), so a trial waits until all W fit. cpus_per_worker should cover
    the DataLoader workers (DataSpec.num_workers) of each rank.
    """
    workers, cpus, gpus = _validated(workers_per_trial, use_gpu, cpus_per_worker, gpus_per_worker)
    if workers == 1:
        return {"cpu": cpus, "gpu": gpus}
    return {"cpu": DRIVER_CPUS, "gpu": 0}


def make_trainable(
    *,
    workers_per_trial: int = 1,
    use_gpu: bool = False,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    run_dir: str | None = None,
    gpu_usable_gb: float | None = None,
) -> Callable[..., None]:
    """A fresh function trainable `(config, indexes=None)` for trials of `workers_per_trial`
    processes, already carrying its `trial_resources` (tune.with_resources); wrap it in
    tune.with_parameters as usual. use_gpu with gpus_per_worker 0 means one GPU per worker.
    `run_dir`, the Tune run folder (storage_path/name), is where data-parallel trials keep their
    Train runs; W > 1 needs it. `gpu_usable_gb`: the GPU memory that fractional shares divide
    (default: each GPU's total)."""
    workers, cpus, gpus = _validated(workers_per_trial, use_gpu, cpus_per_worker, gpus_per_worker)
    if workers > 1 and not run_dir:
        raise ValueError(
            f"workers_per_trial = {workers} needs run_dir, the Tune run folder where each trial keeps its Train run"
        )
    if workers == 1:

        def single(config: dict[str, Any], indexes: dict[str, VideoIndex] | None = None) -> None:
            trainable(config, indexes, gpu_usable_gb)

        single.__name__ = "trainable"
        fn = single
    else:
        per_worker = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}

        def data_parallel(config: dict[str, Any], indexes: dict[str, VideoIndex] | None = None) -> None:
            fit_data_parallel(
                config, indexes, workers=workers, use_gpu=gpus > 0, per_worker=per_worker, run_dir=str(run_dir)
            )

        data_parallel.__name__ = f"trainable_{workers}x"
        fn = data_parallel
    return tune.with_resources(
        fn, trial_resources(workers_per_trial=workers, use_gpu=use_gpu, cpus_per_worker=cpus, gpus_per_worker=gpus)
    )


def _validated(workers: int, use_gpu: bool, cpus: float, gpus: float) -> tuple[int, float, float]:
    r = WorkerResources.of(workers_per_trial=workers, use_gpu=use_gpu, cpus_per_worker=cpus, gpus_per_worker=gpus)
    return r.workers_per_trial, float(r.cpus_per_worker), r.gpus
