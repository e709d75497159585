"""Constraints are checked before a trial starts, so no GPU time goes to an infeasible network.

- `violations(arch, constraints, batch_size, budget)`: how far a network is outside each limit
  (≤ 0 means satisfied), the form Optuna's `constraints_func` expects.
- grid: infeasible points are removed before the Tuner starts and recorded.
- Optuna (random, TPE, NSGA-II): `OptunaSpace` is a define-by-run space that stores each sample's
  violations as a trial attribute (read by the samplers' `constraints_func`), and
  `ConstrainedSearcher` wraps the OptunaSearch: an infeasible suggestion is told to Optuna as a
  pruned trial (what it is: stopped before any training; its violations and its `infeasible`
  reason stay on the trial, and TPE ranks pruned trials without values below every completed one,
  so it learns to avoid the region) and a new one is asked for, instead of starting a Tune trial.
Every rejected sample is recorded in `starch_infeasible.json` at the experiment root.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from ray.tune import Callback
from ray.tune.search import Searcher

from analysis.runfolder import INFEASIBLE_FILE, read_text, write_text
from search.config import Constraints, Experiment
from spaces import ArchSpec, cost
from spaces.memory import GiB, memory
from spaces.space import Space
from spaces.width import parse_count

log = logging.getLogger(__name__)
MAX_REJECTIONS = 10_000


def violations(
    arch: ArchSpec, constraints: Constraints, *, batch_size: int, budget: Any = None, precision: str = "fp32"
) -> dict[str, float]:
    """Each limit's excess (positive = violated), relative to the limit."""
    c = cost(arch)
    out: dict[str, float] = {}
    if constraints.budget_tolerance is not None and budget is not None:
        target = parse_count(budget)
        out["budget"] = abs(c.params - target) / target - constraints.budget_tolerance
    if constraints.max_params is not None:
        out["params"] = c.params / constraints.max_params - 1
    if constraints.max_gflops is not None:
        out["gflops"] = c.gflops / constraints.max_gflops - 1
    if constraints.max_activation_gb is not None:
        # the predicted peak of a training step (spaces.memory), the same number gpus_per_trial: auto packs by
        out["activation_gb"] = memory(arch, batch_size, precision).peak / GiB / constraints.max_activation_gb - 1
    return out


def reason(v: dict[str, float]) -> str | None:
    bad = [f"{name} over its limit by {excess:.1%}" for name, excess in v.items() if excess > 0]
    return "; ".join(bad) or None


def point_violations(
    exp: Experiment, space: Space, point: dict[str, Any]
) -> tuple[ArchSpec | None, dict[str, float], str | None]:
    """(arch, violations, why): why is None for a feasible point; arch is None if it cannot be built."""
    try:
        arch = space.to_arch(point)
    except ValueError as exc:  # e.g. an impossible budget for this network
        return None, {"invalid": 1.0}, str(exc)
    from search.gpu_packing import charged, trial_precision, usable_bytes

    precision = trial_precision(exp.schedule.precision, exp.resources.uses_gpus)
    v = violations(
        arch, exp.constraints, batch_size=exp.data.batch_size, budget=point.get("budget"), precision=precision
    )
    usable = usable_bytes(exp.resources) if exp.resources.auto_gpus else None
    if usable is not None:  # gpus_per_trial: auto — a trial must fit one GPU
        v["gpu_memory"] = charged(arch, exp) / usable - 1
    return arch, v, reason(v)


def check_point(exp: Experiment, space: Space, point: dict[str, Any]) -> tuple[ArchSpec | None, str | None]:
    """(arch, None) if the point is feasible, else (arch or None, why)."""
    arch, _, why = point_violations(exp, space, point)
    return arch, why


@dataclass
class Candidate:
    """One trial, resolved once on the driver: its point of the space, its ArchSpec (k solved),
    its repeat and seed. `to_config()` is the trial config's `candidate`, which the trainer
    (trainers.trial.resolve) and the analysis (analysis.results) read as it is."""

    axes: dict[str, Any]
    arch: ArchSpec
    repeat: int = 0
    seed: int = 0  # the recipe's seed + repeat

    @classmethod
    def of(cls, exp: Experiment, point: dict[str, Any], arch: ArchSpec, repeat: int = 0) -> "Candidate":
        return cls(jsonable(point), arch, repeat, exp.schedule.seed + repeat)

    def to_config(self) -> dict[str, Any]:
        c = cost(self.arch)  # before the dataset sets num_classes: the trial's records have the trained one
        return {
            "axes": self.axes,
            "arch": self.arch.to_dict(),
            "repeat": self.repeat,
            "seed": self.seed,
            "params": c.params,
            "gflops": c.gflops,
        }


def constraints_of(trial) -> list[float]:
    """Optuna < 5 constraints_func: the violations stored by OptunaSpace (≤ 0 = feasible)."""
    return trial.user_attrs.get("constraints", [0.0])


class OptunaSpace:
    """Define-by-run search space for OptunaSearch: samples the varying axes, records violations."""

    def __init__(self, exp: Experiment):
        self.exp = exp
        self.last: tuple[str, ArchSpec | None, str | None] | None = None  # (point, arch, why) of the last sample

    def __call__(self, trial) -> dict[str, Any]:
        space = self.exp.to_space()
        point = {}
        for name, choices in space.axes.items():
            if len(choices) == 1:
                point[name] = choices[0]
            else:
                encoded = [_encode(c) for c in choices]
                point[name] = _decode(trial.suggest_categorical(name, encoded))
        arch, v, why = point_violations(self.exp, space, point)  # k solved once per sample
        self.last = (json.dumps(jsonable(point), sort_keys=True), arch, why)  # read by ConstrainedSearcher
        if hasattr(trial, "set_constraint"):  # Optuna >= 5: samplers read these directly
            for name, excess in (v or {"none": 0.0}).items():
                trial.set_constraint(name, excess)
        else:  # older Optuna: read back by `constraints_of` through the samplers' constraints_func
            trial.set_user_attr("constraints", list(v.values()) or [0.0])
        if why is not None:  # the reason an infeasible sample was pruned (a feasible one needs no journal write)
            trial.set_user_attr("infeasible", why)
        return {"axes": jsonable(point)}


def jsonable(point: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in point.items()}


def _encode(choice):
    """Optuna's categorical choices must be plain scalars: blocks and network mappings become JSON."""
    return json.dumps(choice, sort_keys=True) if isinstance(choice, (tuple, list, dict)) else choice


def _decode(value):
    if isinstance(value, str) and value[:1] in "[{":
        decoded = json.loads(value)
        return tuple(decoded) if isinstance(decoded, list) else decoded
    return value


class ConstrainedSearcher(Searcher):
    """Wraps a Searcher: infeasible suggestions never become trials; they are counted instead.

    Nor does a configuration that already ran (same axes and seed: a sampler such as TPE proposes
    the same categorical point again and again in a small space). A repeat of a finished trial is
    told its result (Optuna's FAQ recipe for duplicates), so the sampler learns without paying; a
    repeat of a running one is told as failed (samplers ignore failed trials). When every point of
    the space has run, the search is finished.
    """

    def __init__(self, inner: Searcher, exp: Experiment, record_dir: str | None, space: OptunaSpace | None = None):
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner, self.exp, self.record_dir = inner, exp, record_dir
        self.space = space  # the inner searcher's OptunaSpace: its last sample is already checked
        self.infeasible: list[dict[str, Any]] = []
        self.duplicates = 0
        self._alias: dict[str, str] = {}
        self._key_of: dict[str, str] = {}  # trial id → configuration key
        self._results: dict[str, dict | None] = {}  # configuration key → its final result (None: running)
        self._infeasible_keys: set[str] = set()
        # after a restore: trials the Optuna study had already ended though the snapshot had not
        self._ended_before_resume: set[str] = set()

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str):
        space = self.exp.to_space()
        if len(self._results) + len(self._infeasible_keys) >= space.size:
            log.warning("every one of the space's %d points has run; the search is finished", space.size)
            return Searcher.FINISHED
        for attempt in range(MAX_REJECTIONS):
            inner_id = trial_id if attempt == 0 else f"{trial_id}-rejected{attempt}"
            config = self.inner.suggest(inner_id)
            if config is None or config == Searcher.FINISHED:
                return config
            point = dict(config["axes"])
            key = json.dumps({"axes": jsonable(point), "repeat": config.get("repeat", 0)}, sort_keys=True)
            if key in self._results:
                self._duplicate(inner_id, key)
                continue
            arch, why = self._check(space, point)
            if why is None:
                self._alias[trial_id], self._key_of[trial_id], self._results[key] = inner_id, key, None
                # drop Optuna's raw (encoded) parameter names: the trial gets its resolved candidate
                return {"candidate": Candidate.of(self.exp, point, arch, config.get("repeat", 0)).to_config()}
            self._infeasible_keys.add(key)
            self._reject(inner_id, point, arch, why)
        raise RuntimeError(
            f"{MAX_REJECTIONS} samples in a row were infeasible or had already run; "
            "loosen the constraints or lower search.num_samples"
        )

    def points_left(self) -> int:
        """How many more trials this searcher can create: the space's points that have neither
        run (or started) nor been found infeasible (what `suggest` ends the search on)."""
        return max(0, self.exp.to_space().size - len(self._results) - len(self._infeasible_keys))

    def _check(self, space: Space, point: dict[str, Any]) -> tuple[ArchSpec | None, str | None]:
        """check_point, unless the OptunaSpace just checked this very point (k is solved once)."""
        last = getattr(self, "space", None) and self.space.last
        if last and last[0] == json.dumps(jsonable(point), sort_keys=True):
            return last[1], last[2]
        return check_point(self.exp, space, point)

    def _duplicate(self, inner_id: str, key: str) -> None:
        self.duplicates += 1
        previous = self._results[key]
        if previous is None:  # still running
            self.inner.on_trial_complete(inner_id, result=None, error=True)
        else:
            self.inner.on_trial_complete(inner_id, result=previous, error=False)
        log.info("sample %s repeats a configuration that already ran; not run again", inner_id)

    def _reject(self, inner_id: str, point: dict, arch: ArchSpec | None, why: str) -> None:
        self.inner.on_trial_complete(inner_id, result=None, error=False)  # no value, no error: PRUNED
        entry = {"axes": jsonable(point), "arch": arch.to_dict() if arch else None, "reason": why}
        self.infeasible.append(entry)
        log.info("infeasible sample skipped (%s): %s", why, entry["axes"])
        write_infeasible(self.record_dir, self.infeasible)

    def _objectives(self):
        metrics = self.inner.metric if isinstance(self.inner.metric, list) else [self.inner.metric]
        modes = self.inner.mode if isinstance(self.inner.mode, list) else [self.inner.mode]
        return list(zip(metrics, modes))

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._alias and self._alias[trial_id] not in self._ended_before_resume:
            self.inner.on_trial_result(self._alias[trial_id], result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self._alias:  # suggested after the snapshot this searcher was restored from
            log.info("trial %s is not in the restored searcher's history; its result is not told to it", trial_id)
            return
        key = self._key_of.get(trial_id)
        if key is not None and result is not None and not error:
            self._results[key] = {m: result[m] for m, _ in self._objectives() if m in result}
        if self._alias[trial_id] not in self._ended_before_resume:
            self.inner.on_trial_complete(self._alias[trial_id], result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        import pickle

        journal = getattr(getattr(getattr(self.inner, "_ot_study", None), "_storage", None), "_backend", None)
        if hasattr(journal, "sync"):  # search.journal.DriverJournal: on disk before the checkpoint that names it
            journal.sync()
        with open(checkpoint_path, "wb") as f:  # Tune writes it to a temporary name and renames it
            pickle.dump(self.__dict__.copy(), f)

    def restore(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
        self.infeasible = recorded_infeasible(self.record_dir, self.infeasible)
        self._ended_before_resume = ended_trials(self.inner)
        close_lost_trials(self.inner)


def ended_trials(searcher) -> set[str]:
    """The trial ids of a restored OptunaSearch whose Optuna trial has already ended in the study.

    Optuna's journal records a trial's end at once, Tune's snapshot of the searcher later: a driver
    killed in between leaves a trial that Tune runs again after `starch resume`. Telling Optuna
    about it twice raises (a finished trial cannot be updated), so it is not told; the study keeps
    its first result."""
    ended = set()
    for trial_id, ot_trial in getattr(searcher, "_ot_trials", {}).items():
        if ot_trial.study._storage.get_trial(ot_trial._trial_id).state.is_finished():
            ended.add(trial_id)
    if ended:
        log.info("trials %s already ended in the Optuna study before the resume; not told again", sorted(ended))
    return ended


def close_lost_trials(searcher) -> int:
    """Close, as FAIL with the user attribute `lost`, the Optuna trials of the study that are still
    RUNNING but unknown to the restored searcher; returns how many.

    A driver killed after Optuna started a trial (in the journal file) but before Tune's next
    snapshot of the searcher leaves that trial RUNNING forever; the restored search samples anew.
    """
    from optuna.trial import TrialState

    study = getattr(searcher, "_ot_study", None)
    if study is None:
        return 0
    known = {t._trial_id for t in getattr(searcher, "_ot_trials", {}).values()}
    lost = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t._trial_id not in known]
    for t in lost:
        study._storage.set_trial_user_attr(
            t._trial_id,
            "lost",
            "started by a driver that was killed before Tune saved the searcher; sampled again after `starch resume`",
        )
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return len(lost)


class InfeasibleFileCallback(Callback):
    """Writes `starch_infeasible.json` once more when the experiment ends.

    After `starch resume`, Tune copies the run's root .json files into its staging folder and
    uploads them back at each experiment checkpoint, the last one just before `on_experiment_end`:
    the file as it was when the run resumed would replace the samples the resumed driver rejected.
    (`starch_trials.json` is rewritten at the end the same way, by TrialsFileCallback.) Tune pickles
    this callback with the searcher in tuner.pkl, so a restored run writes the restored searcher's list.
    """

    def __init__(self, searcher: ConstrainedSearcher):
        self.searcher = searcher

    def on_experiment_end(self, trials, **info):
        write_infeasible(self.searcher.record_dir, self.searcher.infeasible)


def recorded_infeasible(record_dir: str | None, snapshot: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rejected samples of a restored searcher: its checkpoint's list, or starch_infeasible.json
    if that lists more (a driver killed after rejecting samples, before Tune's next checkpoint of
    the searcher; the file is written at every rejection and begins with the checkpoint's list)."""
    if record_dir is None:
        return snapshot
    try:
        on_disk = json.loads(read_text(record_dir, INFEASIBLE_FILE) or "[]")
    except ValueError:
        log.warning(
            "%s/%s is not valid JSON; the searcher's checkpoint lists the rejected samples", record_dir, INFEASIBLE_FILE
        )
        return snapshot
    if isinstance(on_disk, list) and len(on_disk) > len(snapshot) and on_disk[: len(snapshot)] == snapshot:
        return on_disk
    return snapshot


def write_infeasible(record_dir: str | None, entries: list[dict[str, Any]]) -> None:
    if record_dir is not None:
        write_text(record_dir, INFEASIBLE_FILE, json.dumps(entries, indent=1))
