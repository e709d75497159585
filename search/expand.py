"""X3D's progressive forward expansion (Feichtenhofer 2020, §3.3) as a Ray Tune Searcher.

    step 0     train the base point: the cheapest network of the space
    step i     from the current network, one candidate per expandable axis, each expanding only
               that axis so that GFLOPs grow by ≈ the factor c (`search.expand_factor`, X3D: 2);
               train them (in parallel, as ordinary trials); keep the one with the best
               Δaccuracy / ΔGFLOPs over the current network; it becomes the current network
    stop       when the current network reaches `search.target_gflops`, or no axis can grow

The space says what may grow: an axis given as a list is expandable along its choices, a scalar
is fixed. The base point takes every axis at its cheapest choice (fewest frames, smallest crop and
width, fewest blocks, sparsest sampling). For each axis the candidate is the choice whose GFLOPs
ratio to the current network is closest to c in log scale (exact, from `spaces.cost`, nothing is
guessed), among the feasible ones (the experiment's constraints apply to every candidate):

    frames          X3D γt, duration: more frames at the same sampling rate
    sampling_rate   X3D γτ, frame rate: a denser rate with frames scaled to keep the clip's span
    crop            X3D γs, spatial resolution
    width           X3D γw, channels k of every stage
    depth, blocks   X3D γd, residual blocks per stage (Res3D depths, or explicit block lists)
    bottleneck_ratio  X3D γb, the inner width of bottleneck blocks (ArchSpec.bottleneck_ratio; a
                    network with basic blocks has none, and the space refuses a list of ratios)

X3D's channel-wise 3×3×3 convolutions are the conv kind `x3d` (spaces.kinds; the `x3d_s` network).
X3D's optional backward contraction (to land exactly on the target) is not done: the path ends at
the first network at or above the target.

State (the path, the pending step, the trials in flight) is saved with Tune's searcher snapshots
(`save`/`restore`), so `starch resume` continues the expansion where it stopped; the path is also
written to RUN_DIR/starch_expand.jsonl (one JSON object) after every change, which is what the report draws.
"""

from __future__ import annotations

import json
import math
import pickle
from typing import Any

from spaces import cost

# Not *.json: at a restore Tune copies the run folder's .json/.pkl files to its driver staging folder
# and uploads them back at every snapshot, which would put the killed driver's path over the new one.
EXPAND_FILE = "starch_expand.jsonl"
EXPANDABLE = ("frames", "sampling_rate", "crop", "width", "depth", "blocks", "bottleneck_ratio")
AXIS_LABEL = {
    "frames": "frames (γt)",
    "sampling_rate": "frame rate (γτ)",
    "crop": "crop (γs)",
    "width": "width (γw)",
    "depth": "depth (γd)",
    "blocks": "depth (γd)",
    "bottleneck_ratio": "bottleneck width (γb)",
}


def _size(axis: str, value: Any) -> float:
    """How 'big' a choice is along its axis (sampling rate: a sparser rate is smaller)."""
    if axis == "sampling_rate":
        return -value
    if axis == "blocks":
        return sum(value)
    return value


def check_space(exp) -> None:
    """Errors name the axis and what would be valid (called when the experiment is validated)."""
    axes = exp.space
    if len(axes["network"]) != 1 or isinstance(axes["network"][0], dict):
        raise ValueError(
            f"search.algorithm expand grows one named network; space.network must be one name, got {axes['network']!r}"
        )
    if "budget" in axes:
        raise ValueError(
            "search.algorithm expand: space.budget would re-solve k for every candidate; give "
            "space.width (a list of choices to let it grow)"
        )
    fixed_lists = [a for a, c in axes.items() if len(c) > 1 and a not in EXPANDABLE]
    if fixed_lists:
        raise ValueError(
            f"search.algorithm expand: axis {fixed_lists} has several choices but cannot be expanded; "
            f"expandable axes: {', '.join(EXPANDABLE)} (give the others one value)"
        )
    if not [a for a, c in axes.items() if len(c) > 1 and a in EXPANDABLE]:
        raise ValueError(
            f"search.algorithm expand: no axis can grow; give at least one of {', '.join(EXPANDABLE)} "
            "as a list of choices"
        )
    if exp.search.target_gflops is None:
        raise ValueError("search.algorithm expand needs search.target_gflops (where the expansion stops)")
    if exp.scheduler.type != "fifo":
        raise ValueError(
            f"search.algorithm expand compares whole trainings; scheduler.type must be fifo, got {exp.scheduler.type!r}"
        )
    base = base_point(exp)
    from search.constraints import point_violations

    _, _, why = point_violations(exp, exp.to_space(), base)
    if why is not None:
        raise ValueError(
            f"search.algorithm expand: the base network (every axis at its cheapest choice, {jsonable(base)}) "
            f"violates the constraints: {why}"
        )
    if gflops(exp, base) >= exp.search.target_gflops:
        raise ValueError(
            f"search.target_gflops = {exp.search.target_gflops} is not above the base network's "
            f"{gflops(exp, base):.4g} GFLOPs; nothing to expand"
        )


def base_point(exp) -> dict[str, Any]:
    return {a: min(c, key=lambda v: _size(a, v)) for a, c in exp.to_space().axes.items()}


def arch_of(exp, point: dict[str, Any]):
    return exp.to_space().to_arch(point)


def gflops(exp, point: dict[str, Any]) -> float:
    return cost(arch_of(exp, point)).gflops


def jsonable(point: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in point.items()}


def propose(exp, point: dict[str, Any], factor: float) -> list[dict[str, Any]]:
    """One candidate per expandable axis: {axis, axes, gflops, ratio}; GFLOPs ratio closest to `factor`."""
    from search.constraints import point_violations

    space = exp.to_space()
    current = gflops(exp, point)
    out = []
    for axis, choices in space.axes.items():
        if axis not in EXPANDABLE or len(choices) < 2:
            continue
        options = []
        for value in choices:
            if _size(axis, value) <= _size(axis, point[axis]):
                continue
            new = {**point, axis: value}
            if axis == "sampling_rate":  # same span in time, denser: frames × s stays (about) the same
                new["frames"] = max(1, round(point["frames"] * point["sampling_rate"] / value))
            try:
                g = gflops(exp, new)
            except ValueError:
                continue
            if g <= current:
                continue
            options.append((abs(math.log(g / current) - math.log(factor)), g, new))
        for _, g, new in sorted(options, key=lambda o: (o[0], o[1])):
            _, _, why = point_violations(exp, space, new)
            if why is None:
                out.append({"axis": axis, "axes": jsonable(new), "gflops": g, "ratio": g / current})
                break
    return out


class ExpandState:
    """The path so far; pure Python (the Searcher below drives it, tests drive it by hand)."""

    def __init__(self, exp):
        self.metric, self.mode = exp.search.metric, exp.search.mode
        self.factor, self.target = exp.search.expand_factor, exp.search.target_gflops
        self.exp = exp
        base = base_point(exp)
        self.steps: list[dict[str, Any]] = [
            {
                "step": 0,
                "from": None,
                "chosen": None,
                "candidates": [{"axis": "base", "axes": jsonable(base), "gflops": gflops(exp, base), "ratio": 1.0}],
            }
        ]
        self.queue = list(self.steps[0]["candidates"])
        self.running: dict[str, dict[str, Any]] = {}
        self.current: dict[str, Any] | None = None
        self.done: str | None = None  # why the expansion ended

    def next_candidate(self, trial_id: str) -> dict[str, Any] | None:
        if self.done or not self.queue:
            return None
        cand = self.queue.pop(0)
        cand.update(trial_id=trial_id, status="running")
        self.running[trial_id] = cand
        return cand

    def complete(self, trial_id: str, result: dict | None, error: bool) -> bool:
        """Record a finished candidate; True if that finished the step (and a new one may start)."""
        cand = self.running.pop(trial_id, None)
        if cand is None:
            return False
        value = (result or {}).get(self.metric)
        cand["status"] = "errored" if error or value is None else "completed"
        cand["accuracy"] = None if cand["status"] == "errored" else float(value)
        step = self.steps[-1]
        if self.queue or any(c.get("status") in (None, "running") for c in step["candidates"]):
            return False
        self._advance(step)
        return True

    def _score(self, cand: dict[str, Any]) -> float:
        sign = 1.0 if self.mode == "max" else -1.0
        return sign * (cand["accuracy"] - self.current["accuracy"]) / (cand["gflops"] - self.current["gflops"])

    def _advance(self, step: dict[str, Any]) -> None:
        trained = [c for c in step["candidates"] if c["status"] == "completed"]
        if not trained:
            self.done = f"every candidate of step {step['step']} failed"
            return
        if step["step"] == 0:
            chosen = trained[0]
        else:
            chosen = max(trained, key=self._score)
            for c in trained:
                c["score"] = self._score(c)
        step["chosen"] = step["candidates"].index(chosen)
        self.current = chosen
        if chosen["gflops"] >= self.target:
            self.done = f"reached the target of {self.target:g} GFLOPs"
            return
        cands = propose(self.exp, _point(chosen["axes"]), self.factor)
        if not cands:
            self.done = "no axis can grow further (every choice used up or infeasible)"
            return
        self.steps.append(
            {"step": step["step"] + 1, "from": chosen.get("trial_id"), "chosen": None, "candidates": cands}
        )
        self.queue = list(cands)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "mode": self.mode,
            "factor": self.factor,
            "target_gflops": self.target,
            "finished": self.done,
            "steps": self.steps,
        }


def _point(axes: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in axes.items()}


def make_expand_searcher(exp, record_dir: str | None):
    from ray.tune.search import Searcher

    from analysis.runfolder import write_text

    class ExpandSearcher(Searcher):
        """Tune's side of ExpandState: suggest the pending step's candidates, wait, then move on."""

        def __init__(self):
            super().__init__(metric=exp.search.metric, mode=exp.search.mode)
            self.state = ExpandState(exp)
            self.record_dir = record_dir

        def set_search_properties(self, metric, mode, config, **spec) -> bool:
            return True

        def suggest(self, trial_id: str):
            if self.state.done:
                return Searcher.FINISHED
            cand = self.state.next_candidate(trial_id)
            if cand is None:
                return None  # the step's candidates are training: ask again later
            self._write()
            from search.constraints import Candidate

            point = _point(cand["axes"])
            return {"candidate": Candidate.of(exp, point, arch_of(exp, point)).to_config()}

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            self.state.complete(trial_id, result, error)
            self._write()

        def _write(self) -> None:
            if self.record_dir is not None:
                write_text(self.record_dir, EXPAND_FILE, json.dumps(self.state.to_dict()) + "\n")

        def save(self, checkpoint_path: str) -> None:
            with open(checkpoint_path, "wb") as f:
                pickle.dump({"state": self.state.__dict__, "record_dir": self.record_dir}, f)

        def restore(self, checkpoint_path: str) -> None:
            with open(checkpoint_path, "rb") as f:
                saved = pickle.load(f)
            self.state.__dict__.update(saved["state"])
            self.record_dir = saved["record_dir"]

    return ExpandSearcher()


def describe_plan(exp) -> list[str]:
    """The base network and the first step's candidates (for --dry-run)."""
    base = base_point(exp)
    g = gflops(exp, base)
    arch = arch_of(exp, base)
    lines = [
        f"expand: base {arch.name} k={arch.width} {arch.frames}×{arch.crop}² s={arch.sampling_rate} "
        f"blocks={list(arch.blocks)}: {g:.4g} GFLOPs; target {exp.search.target_gflops:g} GFLOPs, "
        f"factor c = {exp.search.expand_factor:g} per step",
        "step 1 candidates (one per axis):",
    ]
    for c in propose(exp, base, exp.search.expand_factor):
        lines.append(
            f"  {AXIS_LABEL[c['axis']]:18s} {c['axis']}={c['axes'][c['axis']]}"
            + (f" frames={c['axes']['frames']}" if c["axis"] == "sampling_rate" else "")
            + f"  {c['gflops']:.4g} GFLOPs (×{c['ratio']:.2f})"
        )
    return lines
