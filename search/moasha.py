"""Multi-objective ASHA: a Ray Tune scheduler that stops trials by Pareto rank, not by one metric.

Tune's ASHA promotes the top 1/η of a rung by one metric; an accuracy-vs-GFLOPs study would then
stop every cheap network that is not yet the most accurate, which is the half of the front it is
looking for. MO-ASHA (Schmucker et al. 2021; Salinas et al. 2021, as in Syne Tune's `MOASHA`) keeps
ASHA's asynchronous rungs and replaces the cut by a multi-objective order:

    rungs      epochs g, g·η, g·η², … below max_t (one bracket, like `scheduler.type: asha`)
    at a rung  a trial reaching it is recorded; its *network* (all seeds of one configuration, the
               value being the mean over the seeds that reached the rung) is ranked among every
               network recorded at the rung so far, and the trial continues iff its network's
               position p in that order (0-based, n networks) has p < n/η, or p = 0.
    order      non-dominated sorting (front 1 before front 2 …); inside a front the ε-net of
               Salinas et al.: start at the most accurate network (the first objective), then
               repeatedly take the network farthest (Euclidean, each objective scaled by its range
               over the rung) from those already taken. Exact ties fall back to the key order.

Why the ε-net and not NSGA-II's crowding distance: crowding distance gives both ends of a front an
infinite distance and a two-network front no order at all, yet rung fronts are small; the ε-net is
a total order that puts the most accurate network first and the one farthest from it (usually the
cheapest) second, so even a cut that keeps two networks keeps both ends of the front. Syne Tune
seeds it the same way (dim 0) but measures distance in raw units, where accuracy in % would swamp
GFLOPs in 0.01s; the range scaling here makes the objectives count alike.

Asynchronous like ASHA: a decision uses what the rung holds when the trial arrives, never waits.

Resume: Ray Tune 2.x snapshots the searcher and the callbacks with its experiment state but not the
scheduler (it is restored from `tuner.pkl`, i.e. as it was when the run started). The rungs are
therefore carried by `RungStateCallback`, a Tune callback holding the scheduler (both are pickled
together in `tuner.pkl`, so the restored callback still holds the restored scheduler) whose
get_state/set_state Tune saves and restores with the experiment snapshot.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ray.tune.callback import Callback
from ray.tune.schedulers import FIFOScheduler, TrialScheduler


def rung_milestones(grace_period: int, reduction_factor: float, max_t: int) -> list[int]:
    """Epochs at which trials are judged: g, g·η, g·η², … strictly below max_t."""
    out, k = [], 0
    while True:
        t = int(round(grace_period * reduction_factor**k))
        if t >= max_t:
            return out
        if not out or t > out[-1]:
            out.append(t)
        k += 1


def nondominated_fronts(points: np.ndarray) -> list[list[int]]:
    """Indices of each Pareto front, best first; `points` (n × m) are to be *minimised*."""
    remaining = list(range(len(points)))
    fronts = []
    while remaining:
        front = [
            i
            for i in remaining
            if not any(np.all(points[j] <= points[i]) and np.any(points[j] < points[i]) for j in remaining)
        ]
        fronts.append(front)
        remaining = [i for i in remaining if i not in front]
    return fronts


def epsilon_net_order(points: np.ndarray, scale: np.ndarray) -> list[int]:
    """Farthest-first order of `points` (minimised), seeded at the best value of the first objective."""
    n = len(points)
    if n == 0:
        return []
    scaled = points / scale
    order = [int(np.lexsort(scaled.T[::-1])[0])]  # best first objective; ties by the next ones
    left = [i for i in range(n) if i != order[0]]
    while left:
        dist = [min(float(np.linalg.norm(scaled[i] - scaled[j])) for j in order) for i in left]
        pick = left[int(np.argmax(dist))]  # argmax takes the first of equal distances: stable
        order.append(pick)
        left.remove(pick)
    return order


def mo_order(points: np.ndarray) -> list[int]:
    """Total order of `points` (minimised): front by front, each front in ε-net order."""
    points = np.asarray(points, dtype=float)
    if len(points) == 0:
        return []
    span = points.max(axis=0) - points.min(axis=0)
    scale = np.where(span > 0, span, 1.0)
    out: list[int] = []
    for front in nondominated_fronts(points):
        out += [front[i] for i in epsilon_net_order(points[front], scale)]
    return out


def promote(values: dict[str, Sequence[float]], key: str, reduction_factor: float) -> bool:
    """Does network `key` continue, given every network's (minimised) objectives at this rung?

    It continues iff its position p in the multi-objective order of the n networks satisfies
    p < n / η, or p = 0 (the first network at a rung always continues, as in ASHA).
    """
    keys = sorted(values)
    order = [keys[i] for i in mo_order(np.array([values[k] for k in keys]))]
    position = order.index(key)
    return position == 0 or position < len(order) / reduction_factor


def network_key(config: dict[str, Any]) -> str:
    """What makes two trials the same network: the sampled axes (or the grid point), not the seed."""
    cand = config.get("candidate")
    if isinstance(cand, dict):
        return json.dumps(cand.get("axes") or cand.get("arch"), sort_keys=True, default=str)
    if "axes" in config:
        return json.dumps(config["axes"], sort_keys=True, default=str)
    stripped = {k: v for k, v in config.items() if k != "repeat"}
    return json.dumps(stripped, sort_keys=True, default=str)


class MOASHAScheduler(FIFOScheduler):
    """Asynchronous successive halving promoting by multi-objective rank (see the module docstring).

    objectives: [(metric, "max"|"min"), …], e.g. [("video@1", "max"), ("gflops", "min")]; every
    one must be in the trial's result at a rung epoch (starch reports params and GFLOPs, known from
    cost() before training, in every record).
    """

    def __init__(
        self,
        objectives: Sequence[tuple[str, str]],
        *,
        time_attr: str = "epoch",
        max_t: int,
        grace_period: int = 1,
        reduction_factor: float = 3,
    ):
        super().__init__()
        if len(objectives) < 2:
            raise ValueError(f"MO-ASHA needs at least two objectives, got {list(objectives)}")
        for metric, mode in objectives:
            if mode not in ("max", "min"):
                raise ValueError(f"objective {metric!r}: mode must be 'max' or 'min', got {mode!r}")
        if not (max_t >= 1 and grace_period >= 1 and reduction_factor > 1):
            raise ValueError(
                f"MO-ASHA: need max_t ≥ 1, grace_period ≥ 1, reduction_factor > 1 "
                f"(got {max_t}, {grace_period}, {reduction_factor})"
            )
        self.objectives = [(m, mode) for m, mode in objectives]
        self.time_attr, self.max_t, self.reduction_factor = time_attr, max_t, reduction_factor
        self.milestones = rung_milestones(grace_period, reduction_factor, max_t)
        # rung epoch → network key → trial id → minimised objective vector
        self.rungs: dict[int, dict[str, dict[str, list[float]]]] = {m: {} for m in self.milestones}
        self.decisions: list[dict[str, Any]] = []  # (trial, rung, continue?) for the report and the tests
        self.num_stopped = 0

    # -- Tune's interface

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # the objectives are our own; Tune's single metric (if any) does not change them

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self.decide(trial.trial_id, trial.config, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if result:
            self.record(trial.trial_id, trial.config, result)

    def debug_string(self) -> str:
        return "Using MO-ASHA: " + self.describe() + f"; stopped {self.num_stopped}"

    # -- the rule (no Ray needed: tests call these with hand-made results)

    def vector(self, result: dict) -> list[float] | None:
        try:
            return [float(result[m]) * (-1.0 if mode == "max" else 1.0) for m, mode in self.objectives]
        except (KeyError, TypeError, ValueError):
            return None

    def record(self, trial_id: str, config: dict, result: dict) -> int | None:
        """Record the result at the highest rung it reached that does not hold this trial yet."""
        t, v = result.get(self.time_attr), self.vector(result)
        if t is None or v is None or any(math.isnan(x) for x in v):
            return None
        for milestone in reversed(self.milestones):
            if t >= milestone:
                rung = self.rungs.setdefault(milestone, {}).setdefault(network_key(config), {})
                if trial_id in rung:
                    return None
                rung[trial_id] = v
                return milestone
        return None

    def decide(self, trial_id: str, config: dict, result: dict) -> str:
        t = result.get(self.time_attr)
        if t is not None and t >= self.max_t:
            return TrialScheduler.STOP
        milestone = self.record(trial_id, config, result)
        if milestone is None:
            return TrialScheduler.CONTINUE
        values = self.network_values(milestone)
        keep = promote(values, network_key(config), self.reduction_factor)
        self.decisions.append({"trial_id": trial_id, "rung": milestone, "networks": len(values), "continue": keep})
        if not keep:
            self.num_stopped += 1
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP

    def network_values(self, milestone: int) -> dict[str, list[float]]:
        """Each network's value at a rung: the mean over its seeds (trials) that reached it."""
        return {key: list(np.mean(list(trials.values()), axis=0)) for key, trials in self.rungs[milestone].items()}

    def describe(self) -> str:
        objectives = ", ".join(f"{m} {mode}" for m, mode in self.objectives)
        rungs = ", ".join(str(m) for m in self.milestones) or "none (max_t ≤ grace_period)"
        return (
            f"rungs at {self.time_attr} {rungs} of {self.max_t}; at each rung the first 1/{self.reduction_factor:g} "
            f"of the networks by non-dominated sorting on ({objectives}), ε-net order inside a front, continue"
        )

    # -- state (what RungStateCallback snapshots)

    def get_state(self) -> dict[str, Any]:
        return {
            "rungs": {str(k): v for k, v in self.rungs.items()},
            "decisions": list(self.decisions),
            "num_stopped": self.num_stopped,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.rungs = {int(k): v for k, v in state["rungs"].items()}
        self.decisions = list(state.get("decisions", []))
        self.num_stopped = state.get("num_stopped", 0)


class RungStateCallback(Callback):
    """Carries a scheduler's rungs through Tune's experiment snapshots: Tune saves its searcher and
    callbacks but rebuilds the scheduler as at the start, so without this a resumed ASHA or MO-ASHA
    would judge the next results against empty rungs. MO-ASHA's state is its own; Tune's ASHA is
    saved through its public `save`/`restore` (its rungs, brackets and stop count)."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def get_state(self) -> dict | None:
        if isinstance(self.scheduler, MOASHAScheduler):
            return {"moasha": self.scheduler.get_state()}
        with tempfile.TemporaryDirectory() as tmp:
            self.scheduler.save(f"{tmp}/scheduler.pkl")
            return {"asha": Path(f"{tmp}/scheduler.pkl").read_bytes()}

    def set_state(self, state: dict) -> None:
        if "moasha" in state:
            self.scheduler.set_state(state["moasha"])
            return
        with tempfile.TemporaryDirectory() as tmp:
            Path(f"{tmp}/scheduler.pkl").write_bytes(state["asha"])
            self.scheduler.restore(f"{tmp}/scheduler.pkl")


def make_moasha(exp) -> MOASHAScheduler:
    """The scheduler for an Experiment: objectives = search.metric + search.objectives."""
    s, epochs = exp.scheduler, exp.schedule.epochs
    objectives = [(exp.search.metric, exp.search.mode), *zip(exp.search.objectives, exp.search.objective_modes)]
    return MOASHAScheduler(
        objectives,
        time_attr="epoch",
        max_t=epochs,
        grace_period=min(s.grace_period, epochs),
        reduction_factor=s.reduction_factor,
    )
