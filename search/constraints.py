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
from typing import Any

from ray.tune.search import Searcher

from search.config import Constraints, Experiment
from search.runfiles import INFEASIBLE_FILE, write_text
from spaces import ArchSpec, cost
from spaces.space import Space
from spaces.width import parse_count

log = logging.getLogger(__name__)
MAX_REJECTIONS = 10_000


def violations(arch: ArchSpec, constraints: Constraints, *, batch_size: int, budget: Any = None) -> dict[str, float]:
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
        out["activation_gb"] = c.activation_bytes(batch=batch_size) / 1e9 / constraints.max_activation_gb - 1
    return out


def reason(v: dict[str, float]) -> str | None:
    bad = [f"{name} over its limit by {excess:.1%}" for name, excess in v.items() if excess > 0]
    return "; ".join(bad) or None


def point_violations(exp: Experiment, space: Space, point: dict[str, Any]
                     ) -> tuple[ArchSpec | None, dict[str, float], str | None]:
    """(arch, violations, why): why is None for a feasible point; arch is None if it cannot be built."""
    try:
        arch = space.to_arch(point)
    except ValueError as exc:  # e.g. an impossible budget for this network
        return None, {"invalid": 1.0}, str(exc)
    v = violations(arch, exp.constraints, batch_size=exp.to_data().batch_size, budget=point.get("budget"))
    return arch, v, reason(v)


def check_point(exp: Experiment, space: Space, point: dict[str, Any]) -> tuple[ArchSpec | None, str | None]:
    """(arch, None) if the point is feasible, else (arch or None, why)."""
    arch, _, why = point_violations(exp, space, point)
    return arch, why


def constraints_of(trial) -> list[float]:
    """Optuna < 5 constraints_func: the violations stored by OptunaSpace (≤ 0 = feasible)."""
    return trial.user_attrs.get("constraints", [0.0])


class OptunaSpace:
    """Define-by-run search space for OptunaSearch: samples the varying axes, records violations."""

    def __init__(self, exp: Experiment):
        self.exp = exp

    def __call__(self, trial) -> dict[str, Any]:
        space = self.exp.to_space()
        point = {}
        for name, choices in space.axes.items():
            if len(choices) == 1:
                point[name] = choices[0]
            else:
                encoded = [_encode(c) for c in choices]
                point[name] = _decode(trial.suggest_categorical(name, encoded))
        _, v, why = point_violations(self.exp, space, point)  # one cost() per sample
        if hasattr(trial, "set_constraint"):  # Optuna >= 5: samplers read these directly
            for name, excess in (v or {"none": 0.0}).items():
                trial.set_constraint(name, excess)
        else:  # older Optuna: read back by `constraints_of` through the samplers' constraints_func
            trial.set_user_attr("constraints", list(v.values()) or [0.0])
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
    """Wraps a Searcher: infeasible suggestions never become trials; they are counted instead."""

    def __init__(self, inner: Searcher, exp: Experiment, record_dir: str | None):
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner, self.exp, self.record_dir = inner, exp, record_dir
        self.infeasible: list[dict[str, Any]] = []
        self._alias: dict[str, str] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str):
        space = self.exp.to_space()
        for attempt in range(MAX_REJECTIONS):
            inner_id = trial_id if attempt == 0 else f"{trial_id}-rejected{attempt}"
            config = self.inner.suggest(inner_id)
            if config is None or config == Searcher.FINISHED:
                return config
            point = dict(config["axes"])
            arch, why = check_point(self.exp, space, point)
            if why is None:
                self._alias[trial_id] = inner_id
                return {"axes": config["axes"]}  # drop Optuna's raw (encoded) parameter names
            self._reject(inner_id, point, arch, why)
        raise RuntimeError(f"{MAX_REJECTIONS} samples in a row were infeasible; loosen the constraints")

    def _reject(self, inner_id: str, point: dict, arch: ArchSpec | None, why: str) -> None:
        self.inner.on_trial_complete(inner_id, result=None, error=False)  # no value, no error: PRUNED
        entry = {"axes": jsonable(point),
                 "arch": arch.to_dict() if arch else None, "reason": why}
        self.infeasible.append(entry)
        log.info("infeasible sample skipped (%s): %s", why, entry["axes"])
        write_infeasible(self.record_dir, self.infeasible)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.inner.on_trial_result(self._alias.get(trial_id, trial_id), result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.inner.on_trial_complete(self._alias.get(trial_id, trial_id), result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__.copy(), f)

    def restore(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
        close_lost_trials(self.inner)


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
        study._storage.set_trial_user_attr(t._trial_id, "lost", "started by a driver that was killed before "
                                           "Tune saved the searcher; sampled again after `starch resume`")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return len(lost)


def write_infeasible(record_dir: str | None, entries: list[dict[str, Any]]) -> None:
    if record_dir is not None:
        write_text(record_dir, INFEASIBLE_FILE, json.dumps(entries, indent=1))
