"""`starch demo` fitted to the machine: measure first, then choose the epochs, then search.

    speeds  = measure_networks(exp, indexes)                  a few real steps of each network (trainers.speed)
    scaling = fit_to_budget(exp, speeds, sizes, budget_s, concurrency)   the preset's epochs, or fewer
    load_experiment("demo", overrides={..., **scaling.overrides()})     every network × seed, fewer epochs

The demo is budgeted in updates (search.demo): the time budget only decides, once and before the
search, how many updates that is. Every network × seed of the preset still runs; on a slow or busy
machine each trains for fewer epochs (the LR step moves with them, so the schedule keeps its
shape), never for a different number of epochs than its peers. A budget that cannot hold even
MIN_EPOCHS is refused before the search starts, with the budget that would.

The prediction, per trial: epochs × train videos / train clips/s + evaluations × test videos ×
(1 + eval_clips) / eval clips/s + its set-up (the median network's: loaders, model, decode
processes); the trials are laid out on `concurrency` slots (longest first), plus a worker's
start-up, the first read of every video when the frame cache is cold (the slowest set-up's excess
over the median, per video it read, times all videos) and REPORT_S. The speeds and the start-up are measured in Ray tasks of 1 CPU, as
many side by side as trials will run, so they include what the trials compete with.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

MIN_EPOCHS = 4  # VERSION 2 of the benchmark learnt by epoch 4; VERSION 3 level 1: R3D-18 by epoch 6 (docs/benchmark)
REPORT_S = 20.0  # figures, tables and the HTML at the end
MARGIN = 0.85  # plan for 85 % of the time left: the measurement is a few batches, not an epoch


@dataclass(frozen=True)
class Sizes:
    """What one epoch and one evaluation read."""

    train_videos: int  # one clip each per epoch
    test_videos: int  # one clip (clip@1) + eval_clips (video@1) each per evaluation
    eval_clips: int


@dataclass(frozen=True)
class Scaling:
    speeds: dict[str, dict[str, float]]  # network → trainers.speed.Speed.to_dict()
    trials: int  # networks × seeds
    concurrency: int  # trials at a time
    startup_s: float  # a new Ray worker's start (measured with the speeds), paid by the first trials
    preset_epochs: int
    epochs: int
    lr_step_epochs: int
    predicted_s: float  # the whole search with `epochs`, as planned
    budget_s: float  # what was left of --budget-minutes when the plan was made

    @property
    def scaled(self) -> bool:
        return self.epochs != self.preset_epochs

    def train_clips_per_s(self) -> float:
        """All networks' training speed: clips per second of one trial, averaged over networks."""
        speeds = [s["train_clips_per_s"] for s in self.speeds.values()]
        return sum(speeds) / len(speeds)

    def measured(self) -> str:
        return (
            f"measured {self.train_clips_per_s():.0f} training clips/s per trial "
            f"(mean of {len(self.speeds)} networks, {self.concurrency} trial(s) at a time; "
            f"a Ray worker starts in {self.startup_s:.0f} s)"
        )

    def sentence(self) -> str:
        measured = self.measured()
        budget = f"{self.budget_s / 60:.1f} min"
        if self.scaled:
            return (
                f"{measured}; {self.epochs} epochs instead of {self.preset_epochs} to fit {budget} "
                f"(predicted {self.predicted_s / 60:.1f} min; LR step at epoch {self.lr_step_epochs} after warm-up)"
            )
        return f"{measured}; the preset's {self.epochs} epochs fit {budget} (predicted {self.predicted_s / 60:.1f} min)"

    def overrides(self) -> dict[str, Any]:
        return {"schedule.epochs": self.epochs, "schedule.lr_step_epochs": self.lr_step_epochs}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sentence": self.sentence()}


def evaluations(epochs: int, eval_every: int) -> int:
    """How many epochs evaluate (trainers.loop: every `eval_every`-th, and always the last)."""
    return epochs // eval_every + (epochs % eval_every != 0)


def scaled_lr_step(recipe, epochs: int) -> int:
    """The preset's LR step moved in proportion to the epochs after warm-up (12 → 8 epochs, warm-up
    1: step 10 → 6), so the drop comes at the same point of the schedule."""
    if epochs == recipe.epochs:
        return recipe.lr_step_epochs
    after = max(1, recipe.epochs - recipe.warmup_epochs)
    return max(1, round(recipe.lr_step_epochs * max(1, epochs - recipe.warmup_epochs) / after))


def predict_seconds(
    trials: list[str],
    speeds: dict[str, dict[str, float]],
    sizes: Sizes,
    recipe,
    epochs: int,
    concurrency: int,
    startup_s: float = 0.0,
) -> float:
    """The wall time of the search (see the module's docstring) if every trial trains `epochs`."""
    evals = evaluations(epochs, recipe.eval_every)
    setups = sorted(s["setup_s"] for s in speeds.values())
    setup = setups[len(setups) // 2]  # a warm frame cache: the first network measured read it cold
    durations = []
    for name in trials:
        s = speeds[name]
        train = epochs * sizes.train_videos / s["train_clips_per_s"]
        evaluate = evals * sizes.test_videos * (1 + sizes.eval_clips) / s["eval_clips_per_s"]
        durations.append(train + evaluate + setup)
    slots = [0.0] * max(1, concurrency)
    for d in sorted(durations, reverse=True):  # longest first onto the least busy slot
        heapq.heapreplace(slots, slots[0] + d)
    cold = max((s["setup_s"] - setup) / max(1, s["videos_read"]) for s in speeds.values())  # seconds per uncached video
    decode = cold * (sizes.train_videos + sizes.test_videos)
    return startup_s + max(slots) + decode + REPORT_S


def fit_to_budget(
    recipe,
    trials: list[str],
    speeds: dict[str, dict[str, float]],
    sizes: Sizes,
    budget_s: float,
    concurrency: int,
    *,
    startup_s: float = 0.0,
    spent_s: float = 0.0,
) -> Scaling:
    """The most epochs (at most the preset's) whose predicted search fits MARGIN × `budget_s`.

    `trials`: the network of each planned trial (one entry per seed). Raises ValueError when even
    MIN_EPOCHS (or the preset's epochs, if fewer) would not fit, naming the budget that would
    (`spent_s`: the time the demo spent before the search, part of --budget-minutes).
    """
    floor = min(MIN_EPOCHS, recipe.epochs)

    def plan(epochs: int) -> Scaling:
        return Scaling(
            speeds=speeds,
            trials=len(trials),
            concurrency=concurrency,
            startup_s=startup_s,
            preset_epochs=recipe.epochs,
            epochs=epochs,
            lr_step_epochs=scaled_lr_step(recipe, epochs),
            predicted_s=predict_seconds(trials, speeds, sizes, recipe, epochs, concurrency, startup_s),
            budget_s=budget_s,
        )

    for epochs in range(recipe.epochs, floor - 1, -1):
        scaling = plan(epochs)
        if scaling.predicted_s <= MARGIN * budget_s:
            return scaling
    smallest = plan(floor)
    need = math.ceil((spent_s + smallest.predicted_s / MARGIN) / 60)
    raise ValueError(
        f"--budget-minutes: the {budget_s / 60:.1f} min left cannot hold the demo on this machine now: "
        f"{smallest.measured()}, so {len(trials)} trials × {floor} epochs (the fewest that still learn) "
        f"would take ≈ {smallest.predicted_s / 60:.1f} min; give --budget-minutes {need} or more, "
        "or run it when the machine is less busy"
    )


def measure_networks(
    candidates, data, indexes, recipe, *, concurrency: int = 1, batches: int = 2, num_gpus: float = 0, key=None
) -> tuple[dict[str, dict[str, float]], float]:
    """trainers.speed.measure for each network of the plan (its first seed), in `concurrency` Ray
    tasks of 1 CPU (and `num_gpus`) side by side, as the trials will run: (key → Speed dict,
    start-up seconds); `key(arch)` names a network (default: its name).

    Start-up: from submitting the tasks to the last one starting its work (a new worker process
    that has imported torch), which the search's first trials pay too. Needs a running Ray."""
    import ray

    networks = list({(key or _name)(c.arch): c.arch for c in candidates}.items())
    slots = max(1, min(concurrency, len(networks)))
    task = ray.remote(num_cpus=1, num_gpus=num_gpus)(_measure_group)
    shared = ray.put(indexes)
    submitted = time.time()
    parts = ray.get([task.remote(networks[i::slots], data, shared, recipe, batches) for i in range(slots)])
    speeds = {name: speed for _, measured in parts for name, speed in measured.items()}
    return {name: speeds[name] for name, _ in networks}, max(started for started, _ in parts) - submitted


def _name(arch) -> str:
    return arch.name


def _measure_group(networks, data, indexes, recipe, batches: int) -> tuple[float, dict[str, dict[str, float]]]:
    from trainers.speed import measure  # torch: a new worker imports it, as a trial's does

    started = time.time()
    return started, {name: measure(arch, data, indexes, recipe, batches=batches).to_dict() for name, arch in networks}
