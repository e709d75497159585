"""One function turns an Experiment into a Ray Tune Tuner; `restore` brings a killed one back.

    exp ──plan()──► Plan (feasible grid candidates or an Optuna searcher, infeasible list)
        ──make_tuner()──► Tuner(trainable, TuneConfig(search_alg, scheduler), RunConfig(storage, failures))

The run folder (STORAGE/NAME) holds Ray Tune's experiment state and one folder per trial, plus:
    starch_experiment.json   the validated experiment (what `starch resume` rebuilds from)
    starch_infeasible.json   samples rejected by the constraints before any training
    starch_trials.json       every trial's status, error and whether ASHA stopped it early
    optuna_study.log         random/TPE/NSGA-II: the Optuna study (JournalStorage; see study_storage)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from analysis.runfolder import EXPERIMENT_FILE, OPTUNA_FILE, is_uri, read_text, write_text
from search.config import PER_TRIAL_DATA, Experiment
from search.constraints import (
    Candidate,
    ConstrainedSearcher,
    InfeasibleFileCallback,
    OptunaSpace,
    check_point,
    constraints_of,
    jsonable,
    write_infeasible,
)
from spaces.validation import format_errors

log = logging.getLogger(__name__)


@dataclass
class Plan:
    candidates: list[Candidate] = field(default_factory=list)  # grid only
    infeasible: list[dict[str, Any]] = field(default_factory=list)

    @property
    def feasible(self) -> int:
        return len(self.candidates)


def plan(exp: Experiment) -> Plan:
    """Expand a grid and check every point against the constraints (other algorithms sample lazily)."""
    out = Plan()
    if exp.search.algorithm != "grid":
        return out
    space = exp.to_space()
    for point in space.grid():
        arch, why = check_point(exp, space, point)
        if why is not None:
            out.infeasible.append({"axes": jsonable(point), "arch": arch.to_dict() if arch else None, "reason": why})
            continue
        for repeat in range(exp.search.repeats):
            out.candidates.append(Candidate.of(exp, point, arch, repeat))
    return out


def run_dir(exp: Experiment, storage: str | None = None) -> str:
    storage = storage or exp.cluster.storage
    if not is_uri(storage):
        storage = str(Path(storage).expanduser().resolve())
    return f"{storage.rstrip('/')}/{exp.name}"


def param_space(exp: Experiment, p: Plan) -> dict[str, Any]:
    from ray import tune

    base = {"data": exp.to_data().to_dict(), "recipe": exp.schedule.to_dict()}
    if exp.search.algorithm == "grid":
        if not p.candidates:
            raise ValueError(
                f"experiment {exp.name!r}: every point of the space is infeasible "
                f"({len(p.infeasible)} rejected, e.g. {p.infeasible[0]['reason'] if p.infeasible else '-'})"
            )
        return {**base, "candidate": tune.grid_search([c.to_config() for c in p.candidates])}
    return base  # the searcher's suggestion adds each trial's resolved candidate


def make_searcher(exp: Experiment, record_dir: str | None):
    """None for grid (Tune's BasicVariantGenerator); otherwise Optuna behind the constraint filter."""
    if exp.search.algorithm == "grid":
        return None
    if exp.search.algorithm == "expand":
        from search.expand import make_expand_searcher

        return make_expand_searcher(exp, record_dir)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    seed = exp.search.seed
    # Optuna >= 5 reads constraints set on the trial; older versions need constraints_func.
    legacy = {} if hasattr(optuna.trial.Trial, "set_constraint") else {"constraints_func": constraints_of}
    if exp.search.algorithm == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    elif exp.search.algorithm == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, **legacy)
    else:
        sampler = optuna.samplers.NSGAIISampler(seed=seed, **legacy)
    metric: Any = exp.search.metric
    mode: Any = exp.search.mode
    if exp.search.algorithm == "nsga2":
        metric = [exp.search.metric, *exp.search.objectives]
        mode = [exp.search.mode, *exp.search.objective_modes]
    space = OptunaSpace(exp)
    inner = OptunaSearch(
        space=space,
        metric=metric,
        mode=mode,
        sampler=sampler,
        storage=study_storage(record_dir),
        study_name=exp.name,
    )
    return ConstrainedSearcher(inner, exp, record_dir, space)


def study_storage(directory: str | None):
    """Optuna's JournalStorage in RUN_DIR/optuna_study.log, or None (Optuna's in-memory storage).

    A journal file is Optuna's storage that needs no server and works on NFS (its lock is a
    symlink), so `optuna.load_study`, `optuna.visualization` and optuna-dashboard open the study
    while the search runs and after. The searcher's own checkpoint holds the storage, and `starch
    resume` re-reads the file. A run in an object store (s3://, gs://) keeps the study in memory
    (Tune's searcher checkpoint): a journal needs a file system that appends. The driver writes it
    through `search.journal.DriverJournal` (Optuna's file backend, without reading its own logs back
    and with one fsync per trial instead of one per log).
    """
    if directory is None:
        return None
    if is_uri(directory):
        if not directory.startswith("file://"):
            return None
        directory = directory.removeprefix("file://")
    from optuna.storages import JournalStorage

    from search.journal import DriverJournal

    Path(directory).mkdir(parents=True, exist_ok=True)
    return JournalStorage(DriverJournal(str(Path(directory) / OPTUNA_FILE)))


def make_scheduler(exp: Experiment):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler

    s, epochs = exp.scheduler, exp.schedule.epochs
    if s.type == "asha":
        return ASHAScheduler(
            time_attr="epoch",
            max_t=epochs,
            grace_period=min(s.grace_period, epochs),
            reduction_factor=s.reduction_factor,
        )
    if s.type == "hyperband":
        return HyperBandScheduler(time_attr="epoch", max_t=epochs, reduction_factor=s.reduction_factor)
    if s.type == "moasha":
        from search.moasha import make_moasha

        return make_moasha(exp)
    return FIFOScheduler()


def scheduler_callbacks(scheduler) -> list:
    """ASHA's and MO-ASHA's rungs ride on Tune's callback snapshots (Tune does not snapshot schedulers).
    HyperBand has no save/restore in Tune: a resumed HyperBand run starts its brackets anew."""
    from ray.tune.schedulers import AsyncHyperBandScheduler

    from search.moasha import MOASHAScheduler, RungStateCallback

    keeps = isinstance(scheduler, (MOASHAScheduler, AsyncHyperBandScheduler))
    return [RungStateCallback(scheduler)] if keeps else []


def make_trainable(exp: Experiment, indexes: dict | None, directory: str):
    """Our function trainable with its resources: one process per trial, or W data-parallel workers
    (whose Train runs live in `directory`, the run folder)."""
    from ray import tune

    from search.gpu_packing import usable_bytes
    from spaces.memory import GiB
    from trainers.ray_adapter import make_trainable as adapter

    r = exp.resources
    fn = adapter(
        workers_per_trial=r.workers_per_trial,
        use_gpu=r.uses_gpus,
        cpus_per_worker=r.cpus_per_trial,
        gpus_per_worker=1.0 if r.auto_gpus else r.gpus_per_trial,
        run_dir=directory,
        gpu_usable_gb=usable / GiB if (usable := usable_bytes(r)) else None,
    )
    if r.auto_gpus:  # each trial's GPU fraction from its predicted memory (search.gpu_packing)
        from search.gpu_packing import resources_fn

        fn = tune.with_resources(fn, resources_fn(exp))
    return tune.with_parameters(fn, indexes=indexes) if indexes else fn


def trainable_for(run: str | Path | Experiment):
    """The trainable of a starch run, for Ray's own reader: `Tuner.restore(RUN_DIR, trainable=trainable_for(RUN_DIR))`.

    `run` is a run folder (its starch_experiment.json says the resources) or an Experiment. The
    trainable carries the run's resources per trial; its trials index the dataset themselves
    (`starch resume` builds the index once on the driver instead).
    """
    if isinstance(run, Experiment):
        return make_trainable(run, None, run_dir(run))
    return make_trainable(read_experiment(str(run)), None, str(run))


def trial_dirname(trial) -> str:
    cand = trial.config.get("candidate") or {}
    label = (cand.get("arch") or {}).get("name", "")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "" for ch in label)
    return f"{trial.trial_id}_{safe}" if safe else trial.trial_id


# Tune reads these from the environment while it runs (Tuner.fit): set for starch's runs only, so that
# a user's own Tune run later in the same process keeps Tune's defaults (its JSON/CSV result files)
TUNE_SETTINGS = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # make_tuner passes ours: JSON, CSV, the logging: section
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",  # non-eval epochs lack the metric
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",  # per-epoch checkpoints are by design
}


@contextlib.contextmanager
def tune_settings():
    """TUNE_SETTINGS in the environment for the block (a value the user set is kept), then as before."""
    added = [key for key in TUNE_SETTINGS if key not in os.environ]
    os.environ.update({key: TUNE_SETTINGS[key] for key in added})
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def make_tuner(
    exp: Experiment,
    *,
    storage: str | None = None,
    indexes: dict | None = None,
    p: Plan | None = None,
    callbacks: list | None = None,
    time_budget_s: float | None = None,
    reuse_actors: bool = True,
):
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from search.progress import ProgressPrinter, TrialsFileCallback
    from search.trackers import tracker_callbacks

    p = p or plan(exp)
    directory = run_dir(exp, storage)
    write_infeasible(directory, p.infeasible)
    searcher = make_searcher(exp, directory)
    for callback in callbacks or []:
        if isinstance(callback, ProgressPrinter) and isinstance(searcher, ConstrainedSearcher):
            callback.searcher = searcher  # pending trials: at most the points it has left
    scheduler = make_scheduler(exp)
    grid = exp.search.algorithm == "grid"
    tune_config = tune.TuneConfig(
        metric=None if exp.search.algorithm == "nsga2" else exp.search.metric,
        mode=None if exp.search.algorithm == "nsga2" else exp.search.mode,
        search_alg=searcher,
        scheduler=scheduler,
        num_samples=-1 if exp.search.algorithm == "expand" else exp.search.num_samples,  # expand ends itself
        max_concurrent_trials=exp.resources.max_concurrent_trials,
        trial_dirname_creator=trial_dirname,
        reuse_actors=reuse_actors,  # a finished trial's actor takes the next one: no process start-up
        time_budget_s=time_budget_s,
    )
    run_config = tune.RunConfig(
        name=exp.name,
        storage_path=directory.rsplit("/", 1)[0],
        failure_config=tune.FailureConfig(max_failures=exp.failures.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[
            JsonLoggerCallback(),
            CSVLoggerCallback(),
            *tracker_callbacks(exp),
            TrialsFileCallback(directory, max_preemptions=exp.failures.max_preemptions),
            *([InfeasibleFileCallback(searcher)] if isinstance(searcher, ConstrainedSearcher) else []),
            *(callbacks or []),
            *scheduler_callbacks(scheduler),
        ],
        verbose=0,
    )
    if not grid and exp.search.algorithm == "nsga2" and exp.scheduler.type not in ("fifo", "moasha"):
        raise ValueError("scheduler: ASHA/HyperBand need one metric; use scheduler.type: moasha or fifo with nsga2")
    return tune.Tuner(
        make_trainable(exp, indexes, directory),
        param_space=param_space(exp, p),
        tune_config=tune_config,
        run_config=run_config,
    )


def write_experiment(exp: Experiment, directory: str) -> None:
    write_text(directory, EXPERIMENT_FILE, json.dumps(exp.model_dump(mode="json"), indent=2))


def read_experiment(directory: str | Path) -> Experiment:
    text = read_text(directory, EXPERIMENT_FILE)
    if text is None:
        raise FileNotFoundError(f"{str(directory)!r} is not a starch run folder (no {EXPERIMENT_FILE})")
    where = f"{str(directory).rstrip('/')}/{EXPERIMENT_FILE}"
    try:
        raw = json.loads(text)
        if isinstance(raw, dict) and isinstance(raw.get("data"), dict):
            # runs written before the experiment refused them: the trial's architecture always set these
            raw["data"] = {k: v for k, v in raw["data"].items() if k not in PER_TRIAL_DATA}
        return Experiment.model_validate(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{where} is not valid JSON ({exc}); the trials' folders are intact — restore the "
            f"file from a copy, or start the experiment again under a new name"
        ) from None
    except ValidationError as exc:
        raise ValueError(format_errors(exc, where)) from None


def restore_tuner(directory: str, exp: Experiment, *, indexes: dict | None = None):
    from ray import tune

    if not tune.Tuner.can_restore(directory):
        raise FileNotFoundError(f"{directory!r} holds no Ray Tune experiment state to resume")
    return tune.Tuner.restore(
        directory,
        trainable=make_trainable(exp, indexes, directory),
        resume_unfinished=True,
        resume_errored=True,
        restart_errored=False,
    )
