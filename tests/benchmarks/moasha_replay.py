"""Replay recorded learning curves through starch's searchers and Tune's schedulers, without training.

As Syne Tune's blackbox repository + simulator backend do: `curves.csv` (per-epoch video@1 of real
starch trials, see curves/record.yaml) is the benchmark; a simulated cluster of W workers runs
trials whose epochs take their recorded seconds, and the real components decide:

    searcher   search.tuner.make_searcher(exp) — Optuna random or NSGA-II behind starch's wrapper
    scheduler  search.tuner.make_scheduler(exp) — Tune's FIFO / ASHA, or starch's MO-ASHA
    events     a trial's epoch ends → scheduler.on_trial_result → CONTINUE (next epoch) or STOP
               (worker freed, searcher.on_trial_complete, a new suggestion starts)

Every run stops when it has spent `budget` epochs, or earlier when its searcher has run every point
of the space (starch never runs a configuration twice) and the last trials have ended. The front after each epoch is the Pareto set
of every trial's latest reported (video@1, GFLOPs) — a stopped trial counts with its last rung's
value, as the report would show it; a second measure keeps only the trials that ran every epoch.
Hypervolume is Optuna's, on (1 − video@1, GFLOPs / max GFLOPs of the table), reference (1, 1.1).
"""

from __future__ import annotations

import heapq
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

CURVES = Path(__file__).with_name("curves") / "curves.csv"
RECORD = Path(__file__).with_name("curves") / "record.yaml"
KEYS = ["network", "width", "frames", "sampling_rate", "crop"]


def load_curves(path: Path = CURVES) -> dict[tuple, pd.DataFrame]:
    table = pd.read_csv(path)
    return {key: g.sort_values("epoch").reset_index(drop=True) for key, g in table.groupby(KEYS)}


def experiment(
    algorithm: str, scheduler: str, seed: int, *, epochs: int, grace_period: int = 1, reduction_factor: float = 3
):
    """The recording experiment with another search algorithm and scheduler (same space, the curves' epochs)."""
    from search.config import load_experiment

    return load_experiment(
        RECORD,
        overrides={
            "schedule.epochs": epochs,
            "search.algorithm": algorithm,
            "search.seed": seed,
            "search.num_samples": 100_000,
            "scheduler.type": scheduler,
            "scheduler.grace_period": grace_period,
            "scheduler.reduction_factor": reduction_factor,
        },
    )


def hypervolume(points: list[tuple[float, float]], gmax: float) -> float:
    """Hypervolume of (video@1 ↑, GFLOPs ↓) points, normalised as in the module docstring."""
    from optuna._hypervolume import compute_hypervolume

    if not points:
        return 0.0
    loss = np.array([[1.0 - a, g / gmax] for a, g in points])
    loss = loss[(loss[:, 0] < 1.0) & (loss[:, 1] < 1.1)]
    return float(compute_hypervolume(loss, np.array([1.0, 1.1]))) if len(loss) else 0.0


@dataclass
class Trace:
    epochs: list[int]  # epochs spent after each reported epoch
    hv: list[float]  # hypervolume of the front at that point
    trials: int
    hv_full: list[float] = None  # the same, from the trials that ran every epoch only

    def hv_at(self, spent: float) -> float:
        i = int(np.searchsorted(self.epochs, spent, side="right")) - 1
        return self.hv[i] if i >= 0 else 0.0

    def epochs_to_reach(self, target: float) -> int | None:
        for spent, hv in zip(self.epochs, self.hv):
            if hv >= target - 1e-12:
                return spent
        return None


def simulate(
    exp, curves: dict[tuple, pd.DataFrame], *, budget: int, workers: int = 4, population: int | None = None
) -> Trace:
    import optuna
    from ray.tune.search import Searcher

    from search.tuner import make_scheduler, make_searcher
    from spaces import ArchSpec

    searcher, scheduler = make_searcher(exp, None), make_scheduler(exp)
    if population and exp.search.algorithm == "nsga2":  # starch's sampler with a population that fits the budget
        searcher.inner._ot_study.sampler = optuna.samplers.NSGAIISampler(
            seed=exp.search.seed, population_size=population
        )
    scheduler.set_search_properties(exp.search.metric, exp.search.mode)
    gmax = max(float(c["gflops"].iloc[0]) for c in curves.values())
    latest: dict[str, tuple[float, float]] = {}
    full: dict[str, tuple[float, float]] = {}
    events: list[tuple[float, int, str]] = []
    trials: dict[str, SimpleNamespace] = {}
    spent, counter, order = 0, 0, 0
    trace = Trace([], [], 0, [])

    def start(now: float) -> None:
        nonlocal counter
        tid = f"t{counter:05d}"
        config = searcher.suggest(tid)
        if config is None or config == Searcher.FINISHED:  # every point of the space has run: the worker idles
            return
        counter += 1
        arch = ArchSpec.from_dict(config["candidate"]["arch"])  # resolved by the searcher
        curve = curves[(arch.name, arch.width, arch.frames, arch.sampling_rate, arch.crop)]
        trial = SimpleNamespace(trial_id=tid, config=config, curve=curve, epoch=0)
        trials[tid] = trial
        scheduler.on_trial_add(None, trial)
        heapq.heappush(events, (now + float(curve["epoch_time_s"].iloc[0]), counter, tid))  # ties: start order

    max_t = int(exp.schedule.epochs)
    for _ in range(workers):
        start(0.0)
    while events and spent < budget:
        now, _, tid = heapq.heappop(events)
        trial = trials[tid]
        row = trial.curve.iloc[trial.epoch]
        trial.epoch += 1
        spent += 1
        result = {
            "epoch": trial.epoch,
            "training_iteration": trial.epoch,
            "video@1": float(row["video@1"]),
            "gflops": float(row["gflops"]),
            "params": float(row["params"]),
        }
        latest[tid] = (result["video@1"], result["gflops"])
        trace.epochs.append(spent)
        if trial.epoch >= max_t:
            full[tid] = latest[tid]
        trace.hv.append(hypervolume(list(latest.values()), gmax))
        trace.hv_full.append(hypervolume(list(full.values()), gmax))
        searcher.on_trial_result(tid, result)
        action = scheduler.on_trial_result(None, trial, result)
        if action == "STOP" or trial.epoch >= max_t:
            scheduler.on_trial_complete(None, trial, result)
            searcher.on_trial_complete(tid, result=result)
            start(now)
        else:
            order += 1
            heapq.heappush(events, (now + float(trial.curve["epoch_time_s"].iloc[trial.epoch]), -order, tid))
    trace.trials = counter
    return trace


METHODS = {  # label → (search.algorithm, scheduler.type)
    "random + FIFO": ("random", "fifo"),
    "NSGA-II + FIFO": ("nsga2", "fifo"),
    "random + ASHA (video@1)": ("random", "asha"),
    "random + MO-ASHA": ("random", "moasha"),
    "NSGA-II + MO-ASHA": ("nsga2", "moasha"),
}


def run_benchmark(
    seeds=range(5),
    *,
    fifo_trials: int = 12,
    workers: int = 4,
    reduction_factor: float = 3,
    population: int = 8,
    curves: dict | None = None,
) -> dict[str, list[Trace]]:
    """Every method × seed with the budget of `fifo_trials` whole trials (FIFO's epochs)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves = curves or load_curves()
    epochs = int(next(iter(curves.values()))["epoch"].max())
    budget = fifo_trials * epochs
    out: dict[str, list[Trace]] = {}
    for label, (algorithm, sched) in METHODS.items():
        out[label] = [
            simulate(
                experiment(algorithm, sched, seed, epochs=epochs, reduction_factor=reduction_factor),
                curves,
                budget=budget,
                workers=workers,
                population=population,
            )
            for seed in seeds
        ]
    return out


def summary(traces: dict[str, list[Trace]], reference: str = "NSGA-II + FIFO") -> pd.DataFrame:
    """HV at 20/40/60/100 % of the budget (mean ± std over seeds) and the epochs each method needs to
    reach the reference's final hypervolume (per seed, as a fraction of the reference's epochs)."""
    budget = traces[reference][0].epochs[-1]
    targets = [t.hv[-1] for t in traces[reference]]
    rows = []
    for label, runs in traces.items():
        row = {"method": label, "trials (mean)": np.mean([t.trials for t in runs])}
        for frac in (0.2, 0.4, 0.6, 1.0):
            hv = [t.hv_at(frac * budget) for t in runs]
            row[f"HV @ {frac:.0%}"] = f"{np.mean(hv):.3f} ± {np.std(hv):.3f}"
        hv_full = [t.hv_full[-1] for t in runs]
        row["HV @ 100%, whole trials only"] = f"{np.mean(hv_full):.3f} ± {np.std(hv_full):.3f}"
        reach = [t.epochs_to_reach(target) for t, target in zip(runs, targets)]
        fractions = [r / budget if r is not None else math.inf for r in reach]
        row["reached ref. HV"] = f"{sum(f <= 1 for f in fractions)}/{len(runs)}"
        row["within 40 %"] = f"{sum(f <= 0.4 for f in fractions)}/{len(runs)}"
        median = float(np.median(fractions))
        row["epochs to ref. HV (median)"] = f"{median:.0%}" if math.isfinite(median) else "not reached"
        rows.append(row)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    result = summary(run_benchmark())
    print(result.to_markdown(index=False))
    print(json.dumps({"curves": str(CURVES)}))


# -- the same replay through a real Ray Tune run: a trainable that reports the recorded curve, sleeping ~0


def replay_trainable(config: dict, curves: dict | None = None) -> None:
    """Report a recorded curve epoch by epoch, as a starch trial would (no training, no sleep)."""
    from ray import tune

    from spaces import ArchSpec

    arch = ArchSpec.from_dict(config["candidate"]["arch"])  # resolved by the searcher
    curve = curves[(arch.name, arch.width, arch.frames, arch.sampling_rate, arch.crop)]
    for row in curve.to_dict("records"):
        tune.report(
            {
                "epoch": int(row["epoch"]),
                "video@1": float(row["video@1"]),
                "gflops": float(row["gflops"]),
                "params": float(row["params"]),
            }
        )


def tune_replay(
    exp,
    curves: dict[tuple, pd.DataFrame],
    *,
    budget: int,
    workers: int = 4,
    population: int | None = None,
    storage: str,
) -> Trace:
    """Run `exp`'s searcher and scheduler through tune.Tuner on the replay trainable until `budget`
    epochs have been reported; the trace is computed from the results in the order Tune saw them."""
    import os

    import optuna
    import ray.cloudpickle
    from ray import tune
    from ray.tune import Callback, Stopper

    from search.tuner import make_scheduler, make_searcher, scheduler_callbacks

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no TensorBoard/CSV/JSON files per trial
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import this file
    searcher, scheduler = make_searcher(exp, None), make_scheduler(exp)
    if population and exp.search.algorithm == "nsga2":
        searcher.inner._ot_study.sampler = optuna.samplers.NSGAIISampler(
            seed=exp.search.seed, population_size=population
        )
    seen: list[tuple[str, int, float, float]] = []

    class Record(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            seen.append((trial.trial_id, int(result["epoch"]), result["video@1"], result["gflops"]))

    class EpochBudget(Stopper):
        def __call__(self, trial_id, result):
            return False

        def stop_all(self):
            return len(seen) >= budget

    multi = exp.search.algorithm == "nsga2"
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(replay_trainable, curves=curves), {"cpu": 2 / workers}),
        param_space={},  # the searcher's suggestion is the whole config (a resolved candidate)
        tune_config=tune.TuneConfig(
            metric=None if multi else exp.search.metric,
            mode=None if multi else exp.search.mode,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=-1,
            max_concurrent_trials=workers,
        ),
        run_config=tune.RunConfig(
            name=f"replay-{exp.search.algorithm}-{exp.scheduler.type}-{exp.search.seed}",
            storage_path=storage,
            stop=EpochBudget(),
            verbose=0,
            callbacks=[Record(), *scheduler_callbacks(scheduler)],
        ),
    )
    tuner.fit()
    gmax = max(float(c["gflops"].iloc[0]) for c in curves.values())
    latest: dict[str, tuple[float, float]] = {}
    full: dict[str, tuple[float, float]] = {}
    max_t = int(exp.schedule.epochs)
    trace = Trace([], [], len({t for t, *_ in seen[:budget]}), [])
    for n, (tid, epoch, acc, g) in enumerate(seen[:budget], 1):
        latest[tid] = (acc, g)
        if epoch >= max_t:
            full[tid] = (acc, g)
        trace.epochs.append(n)
        trace.hv.append(hypervolume(list(latest.values()), gmax))
        trace.hv_full.append(hypervolume(list(full.values()), gmax))
    return trace
