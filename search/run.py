"""Running an experiment end to end: Ray up, Tuner.fit() or Tuner.restore(), files and report."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import threading
from pathlib import Path

from analysis.runfolder import TRIALS_FILE, check_storage, is_uri, read_text, write_text
from search.config import Experiment
from search.tuner import Plan, make_tuner, read_experiment, restore_tuner, run_dir, tune_settings, write_experiment

log = logging.getLogger(__name__)
DATA_PLACEHOLDER = "<--data>"
ORPHANS = "orphaned"  # trial folders a killed driver left that its last snapshot does not list


def init_ray(address: str | None, *, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Join a cluster (address 'auto' or ray://…) or start a new local Ray without a dashboard.

    Without an address the local Ray is always our own (`address="local"`): never another user's
    Ray on the same machine, nor the address file a dead `ray start` left behind (plain
    `ray.init(num_cpus=…)` would try to join either). It runs in Ray's single-machine mode (the
    one macOS and Windows get by default), so its GCS, raylet and workers listen on the loopback
    only: Ray would otherwise bind them to every interface.
    """
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        from ray._private import ray_constants  # read when Ray picks the node IP; the env var is for children

        os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, log_to_driver=False)


def local_resources(exp: Experiment) -> dict[str, float]:
    """What the local Ray that `init_ray(None)` starts will have: the CPUs this process may use and,
    only when the experiment asks for GPUs, the GPUs torch sees (torch is imported only then)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    gpus = 0
    if exp.resources.uses_gpus:
        import torch

        gpus = torch.cuda.device_count()
    return {"CPU": float(cpus), "GPU": float(gpus)}


def check_resources(exp: Experiment, total: dict[str, float] | None = None) -> Experiment:
    """Refuse a run that could never be scheduled (instead of pending forever); bound DDP trials.

    `total`: the cluster's resources (default: ask the running Ray). With W data-parallel workers
    the Tune trial is a cheap driver, so without a limit Tune would start more drivers than the
    cluster can train: max_concurrent_trials defaults to what fits.
    """
    running = total is None  # else: checked before Ray starts, from what the local Ray will have
    if running:
        import ray

        total = ray.cluster_resources()
    r = exp.resources
    gpus, cpus = total.get("GPU", 0), total.get("CPU", 0)
    if r.auto_gpus:
        if not gpus:
            raise ValueError(
                "resources: gpus_per_trial = auto but the Ray cluster has no GPU; use a GPU cluster "
                "(--address) or --set resources.gpus_per_trial=0 to train on CPUs"
            )
        if r.gpu_memory_gb is None and running:
            from search.gpu_packing import detect_gpu_memory_gb

            detected = detect_gpu_memory_gb()
            if detected is None:
                raise ValueError(
                    "resources: gpus_per_trial = auto could not detect the GPUs' memory; set "
                    "resources.gpu_memory_gb (GiB per GPU, e.g. 16)"
                )
            exp = exp.updated(resources={**r.model_dump(), "gpu_memory_gb": math.floor(detected * 100) / 100})
            r = exp.resources
        from search.gpu_packing import spread

        cap = spread(exp, gpus)  # Ray fills one GPU's fractions before the next: spread the trials
        if cap < r.max_trials_per_gpu:
            log.info("gpus_per_trial auto: at most %d trial(s) per GPU to spread them over %g GPU(s)", cap, gpus)
            exp = exp.updated(resources={**r.model_dump(), "max_trials_per_gpu": cap})
            r = exp.resources
    need_gpu = 0.0001 if r.auto_gpus else r.gpus_per_trial * r.workers_per_trial
    need_cpu = r.cpus_per_trial * r.workers_per_trial
    if need_gpu > gpus:
        raise ValueError(
            f"resources: a trial needs {need_gpu:g} GPU(s) (gpus_per_trial × workers_per_trial) but the "
            f"Ray cluster has {gpus:g}; use a GPU cluster (--address) or set "
            f"--set resources.gpus_per_trial=0 to train on CPUs"
        )
    if need_cpu > cpus:
        raise ValueError(
            f"resources: a trial needs {need_cpu:g} CPU(s) (cpus_per_trial × workers_per_trial) but the "
            f"cluster has {cpus:g}"
        )
    if r.workers_per_trial > 1 and r.max_concurrent_trials is None:
        fits = int(cpus // need_cpu) if not need_gpu else int(min(cpus // need_cpu, gpus // need_gpu))
        exp = exp.updated(resources={**r.model_dump(), "max_concurrent_trials": max(1, fits)})
    return exp


def driver_indexes(exp: Experiment) -> dict | None:
    """The video index, built once on the driver and shared with every trial (tune.with_parameters).

    Fails early on missing videos. When the data is not visible from the driver (Ray Client, data
    only on the workers) the trials build it themselves.
    """
    from trainers.data.datasets import build_index, layout

    data = exp.to_data()
    if data.root == DATA_PLACEHOLDER:
        raise ValueError(
            f"experiment {exp.name!r} names no dataset: pass --data FORMAT:ROOT (e.g. ucf101:/data/ucf101)"
        )
    if not Path(data.root).expanduser().exists() and (exp.cluster.address or "").startswith("ray://"):
        # Ray Client: the driver may be a laptop without the data; the trials index it on the cluster
        log.warning("dataset root %s is not visible from the driver; each trial will index it itself", data.root)
        return None
    if not Path(data.root).expanduser().exists():
        raise FileNotFoundError(
            f"data.root {data.root!r} does not exist; format {data.format} expects {layout(data.format)}"
        )
    return {"train": build_index(data, "train"), "test": build_index(data, "test")}


def with_dataset_classes(exp: Experiment, indexes: dict | None) -> Experiment:
    """Solve widths for the dataset's real class count (the fc layer is part of the budget)."""
    if not indexes:
        return exp
    return exp.updated(space={**exp.space, "num_classes": [indexes["train"].num_classes]})


class GracefulInterrupt(contextlib.AbstractContextManager):
    """Ctrl-C during a search: Tune stops, snapshots the experiment, and we remember that it did.

    Tune's own SIGINT handler would do the same but leave no trace of the interruption (its trials
    end TERMINATED, like trials a scheduler stopped), so ours takes SIGINT and forwards it as the
    SIGUSR1 Tune also listens to. A second Ctrl-C aborts at once.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        print("\nstopping: saving the experiment state (Ctrl-C again to abort at once) ...", flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)


def mark_interrupted(directory: str) -> None:
    """Trials that an interruption ended mid-training are INTERRUPTED, not stopped early."""
    text = read_text(directory, TRIALS_FILE)
    if text is None:
        return
    trials = json.loads(text)
    for t in trials:
        if (
            t["status"] in ("TERMINATED", "RUNNING", "PENDING")
            and t.get("run_status") != "completed"
            and t.get("run_status") not in ("diverged", "oom", "oom-shared")
        ):
            t.update(status="INTERRUPTED", stopped_early=False)
    write_text(directory, TRIALS_FILE, json.dumps(trials, indent=1))


def _newest_state(directory: str):
    """(file system, run root, path of the newest experiment_state-*.json or None): local or URI alike."""
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(directory)
    root = root.rstrip("/")
    try:
        infos = fs.get_file_info(pafs.FileSelector(root))
    except (FileNotFoundError, OSError):
        return fs, root, None
    states = sorted(
        i.path for i in infos if i.base_name.startswith("experiment_state-") and i.base_name.endswith(".json")
    )
    return fs, root, (states[-1] if states else None)


def _read(fs, path: str) -> bytes:
    with fs.open_input_stream(path) as src:
        return src.read()


def set_aside_orphans(directory: str) -> list[str]:
    """Move trial folders that Tune.restore will not know into RUN_DIR/orphaned/; return their names.

    Tune snapshots its experiment state every few seconds; a driver killed between a trial's start
    and the next snapshot leaves that trial's folder behind, and the restored searcher samples the
    trial again under a new id. Left in place, the run would list it twice (once without results).
    Moved aside, nothing is deleted. Local folders and URIs alike (an object store copies, then deletes).
    """
    import pyarrow.fs as pafs

    fs, root, state = _newest_state(directory)
    if state is None:
        return []
    try:
        known = {json.loads(trial)["relative_logdir"] for trial, _ in json.loads(_read(fs, state))["trial_data"]}
    except (ValueError, KeyError, TypeError):  # a format we do not know: touch nothing, Tune decides
        return []
    folders = [i for i in fs.get_file_info(pafs.FileSelector(root)) if i.type == pafs.FileType.Directory]
    orphans = [
        i.base_name
        for i in sorted(folders, key=lambda i: i.base_name)
        if i.base_name not in known and fs.get_file_info(f"{i.path}/params.json").type == pafs.FileType.File
    ]
    for name in orphans:
        fs.create_dir(f"{root}/{ORPHANS}", recursive=True)
        source, target = f"{root}/{name}", f"{root}/{ORPHANS}/{name}"
        if fs.type_name == "local":
            fs.move(source, target)
        else:  # object stores have no directory rename
            pafs.copy_files(source, target, source_filesystem=fs, destination_filesystem=fs)
            fs.delete_dir(source)
    return orphans


def catch_up_search_counter(directory: str) -> int:
    """Make the search generator's trial count agree with the experiment state; return the change.

    Tune saves a snapshot in two steps: the experiment state (every trial) first, then the searcher
    and the search generator (how many trials it has created). A driver killed between the two
    leaves a state that lists a trial the generator does not count, and the restored run creates
    one trial too many (5 for num_samples 4). Counting the listed trials as created fixes that;
    nothing is lost. Local folders and URIs alike; an unknown format is left to Tune.
    """
    import pyarrow.fs as pafs

    fs, _, state_path = _newest_state(directory)
    if state_path is None:
        return 0
    generator = state_path.replace("experiment_state-", "search_gen_state-")
    if fs.get_file_info(generator).type != pafs.FileType.File:  # grid search, or another generator
        return 0
    import ray.cloudpickle as cloudpickle

    try:
        listed = len(json.loads(_read(fs, state_path))["trial_data"])
        state = cloudpickle.loads(_read(fs, generator))
        behind = listed - int(state["counter"])
    except Exception:  # a format we do not know (or a torn write): touch nothing, Tune decides
        return 0
    if behind <= 0:
        return 0
    state["counter"] = listed
    if fs.type_name == "local":  # atomic: a reader never sees half a file
        tmp = f"{generator}.tmp"
        with fs.open_output_stream(tmp) as out:
            out.write(cloudpickle.dumps(state))
        fs.move(tmp, generator)
    else:  # an object store's PUT replaces the object whole
        with fs.open_output_stream(generator) as out:
            out.write(cloudpickle.dumps(state))
    return behind


# What Ray says when an actor's node died (ActorDiedError keeps its cause only as text); tested
# against the real message with a node removed from a ray.cluster_utils.Cluster (test_failures.py)
NODE_DIED = "because its node has died"


def lost_node(exc: BaseException | None) -> str | None:
    """Why a trial's failure is its node's, not its own: the node died or was preempted (a spot
    notice: Ray drains the node and marks the error `preempted`), or the worker became unreachable.
    None for an exception of the trial's own code, and for a worker process that died on a live
    node (killed for memory, a crash in native code: possibly the trial's own doing)."""
    from ray.exceptions import ActorUnavailableError, NodeDiedError, RayActorError, RayTaskError

    if isinstance(exc, RayTaskError):  # raised in the trial; a Ray Train worker's death arrives so
        exc = exc.as_instanceof_cause()
    if isinstance(exc, NodeDiedError):
        return "node died"
    if not isinstance(exc, RayActorError):
        return None
    if exc.preempted:
        return "node preempted"
    if isinstance(exc, ActorUnavailableError):
        return "worker unreachable"
    return "node died" if NODE_DIED in str(exc) else None


@contextlib.contextmanager
def preemptions_apart(tuner):
    """While `tuner` runs: a trial that lost its node is retried from its last checkpoint without
    using a `failures.max_failures` attempt (up to `failures.max_preemptions`), and the trials file
    counts it as a preemption; an exception of the trial's own code still counts (ray #50187).

    Tune counts every failure in Trial.handle_error before it decides to retry (Ray 2.x excuses only
    errors Ray itself marks `preempted`, i.e. drained nodes); wrapping that one method, for the
    run's duration, is the smallest hook. Ray Client runs Tune on the cluster: no hook there.
    """
    from ray.tune.experiment.trial import Trial

    from search.progress import TrialsFileCallback

    local = getattr(tuner, "_local_tuner", None)
    callbacks = (local.get_run_config().callbacks or []) if local is not None else []
    record = next((c for c in callbacks if isinstance(c, TrialsFileCallback)), None)
    if record is None:
        yield
        return
    original = Trial.handle_error

    def handle_error(trial, exc=None):
        counted = trial.run_metadata.num_failures
        original(trial, exc)
        why = lost_node(exc)
        if why and record.node_lost(trial, why):
            trial.run_metadata.num_failures = counted
            trial.run_metadata.invalidate_cache()
            print(
                f"trial {trial.trial_id}: {why}; restarting from its last checkpoint, not counted against "
                f"failures.max_failures (preemption {record.trials[trial.trial_id]['preemptions']})",
                flush=True,
            )

    Trial.handle_error = handle_error
    try:
        yield
    finally:
        Trial.handle_error = original


def _fit_tuner(tuner, directory: str):
    with GracefulInterrupt() as guard, preemptions_apart(tuner), tune_settings():
        results = tuner.fit()
    if guard.interrupted:
        mark_interrupted(directory)
    return directory, results


def preflight(exp: Experiment, *, local: bool = True) -> tuple[Experiment, dict | None]:
    """Everything that can be checked before Ray starts, for a dry run and a run alike: the dataset
    (root, layout, split files, listed videos, labels; widths are then solved for its class count)
    and, when `local` and no address is given, the resources of the local Ray about to start."""
    if local and not exp.cluster.address:
        check_resources(exp, local_resources(exp))
    check_storage(exp.cluster.storage)
    indexes = driver_indexes(exp)
    return with_dataset_classes(exp, indexes), indexes


def fit(
    exp: Experiment,
    *,
    storage: str | None = None,
    callbacks: list | None = None,
    p: Plan | None = None,
    time_budget_s: float | None = None,
    announce=None,
):
    """Preflight, Ray up, the run folder's starch files, Tuner.fit(). `announce(exp, indexes, run_dir)`
    runs once Ray is up and before the first trial (the cost estimate at the top of the log)."""
    import ray

    exp, indexes = preflight(exp, local=not ray.is_initialized())
    init_ray(exp.cluster.address)
    directory = run_dir(exp, storage)
    exp = check_resources(exp)
    write_experiment(exp, directory)
    if announce is not None:
        announce(exp, indexes, directory)
    tuner = make_tuner(exp, storage=storage, indexes=indexes, p=p, callbacks=callbacks, time_budget_s=time_budget_s)
    return _fit_tuner(tuner, directory)


def resume(directory: str | os.PathLike, *, callbacks: list | None = None, exp: Experiment | None = None):
    """Tuner.restore the run at `directory`; `exp` is its starch_experiment.json if the caller has read it."""
    import ray

    directory = str(Path(directory).expanduser().resolve()) if not is_uri(directory) else str(directory)
    exp = exp or read_experiment(directory)  # saved with the dataset's class count already applied
    if not ray.is_initialized() and not exp.cluster.address:
        check_resources(exp, local_resources(exp))
    indexes = driver_indexes(exp)
    init_ray(exp.cluster.address)
    check_resources(exp)
    moved = set_aside_orphans(directory)
    if catch_up_search_counter(directory):
        print(
            "note: the killed driver's last snapshot listed trials its search generator had not counted yet; "
            "they count now, so no extra trial is sampled"
        )
    if moved:
        print(
            f"note: {len(moved)} trial folder(s) started after the killed driver's last experiment snapshot, "
            f"so Tune does not know them and samples them anew; kept in {directory.rstrip('/')}/{ORPHANS}: "
            + ", ".join(moved)
        )
    tuner = restore_tuner(directory, exp, indexes=indexes)
    return _fit_tuner(tuner, directory)
