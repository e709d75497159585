"""One search driver of the driver-scaling benchmark (tests/benchmarks/test_driver_scaling.py).

    python -m tests.benchmarks.driver_overhead --variant starch|tune --trials N --address ADDR --storage DIR
        [--profile FILE.html|FILE.txt|FILE.pyisession]

Runs N trials of a trainable that reports one record and returns at once, on the Ray cluster at
ADDR, and prints one JSON line: fit wall time, trials/s, the driver's CPU time during fit, and its resident memory before
and after fit (VmRSS) and its peak (VmHWM). Both variants use the same searcher, an Optuna
RandomSampler(seed 0) over starch's define-by-run space (OptunaSpace) of 5 networks × 2,000
widths, one CPU per trial, actor reuse:

    tune     plain Ray Tune: Tuner(trainable, TuneConfig(search_alg=OptunaSearch(…), num_samples=N))
             with Tune's default callbacks (JSON, CSV, TensorBoard loggers) and verbose=0
    starch   search.tuner.make_tuner(exp): the ConstrainedSearcher around that OptunaSearch
             (constraint check and duplicate filter per sample, the Optuna journal file,
             starch_infeasible.json), starch's loggers, starch_trials.json, and the ProgressPrinter
             that `starch search` adds (printing to /dev/null); only the trainable is replaced

A separate process per run, so each driver's memory is its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

NETWORKS = ["r3d_18", "mc3", "rmc3", "r2plus1d_18", "f-r2d"]
WIDTHS = list(range(1, 2001))


def instant_trainable(config):
    """Reports one epoch record (like our trainable's last one) and returns."""
    from ray import tune

    axes = (config.get("candidate") or config).get("axes") or {}
    tune.report(
        {
            "epoch": 1,
            "video@1": 0.5,
            "status": "completed",
            "arch_name": axes.get("network"),
            "width": axes.get("width"),
        }
    )


def _memory_mb() -> dict[str, float]:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields


def _cpu_s() -> float:
    """CPU seconds of this process (all its threads): the driver's own work, which a loaded machine
    does not inflate the way it inflates wall time."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def experiment(trials: int, storage: str, name: str):
    from search.config import Experiment

    return Experiment.model_validate(
        {
            "name": name,
            "space": {"network": NETWORKS, "width": WIDTHS, "frames": 8, "crop": 32},
            "constraints": {"max_params": 1e12},  # checked for every sample, never violated
            "data": {"format": "ucf101", "root": storage},
            "schedule": {"epochs": 1},
            "search": {"algorithm": "random", "num_samples": trials, "metric": "video@1", "seed": 0},
            "resources": {"cpus_per_trial": 1},
            "cluster": {"storage": storage},
        }
    )


WITHOUT = {
    "journal": "the Optuna study in memory (as plain Tune keeps it) instead of the journal file",
    "progress": "no ProgressPrinter",
    "trials-file": "no TrialsFileCallback (starch_trials.json)",
    "tensorboard": "no TensorBoard callback (logging.tensorboard: false)",
}


def make(variant: str, trials: int, storage: str, without: tuple[str, ...] = ()):
    """The Tuner of one variant; `without` removes parts of starch's driver (WITHOUT) to measure
    what each costs."""
    from ray import tune

    name = f"{variant}-{trials}"
    exp = experiment(trials, storage, name)
    if "tensorboard" in without:
        exp = exp.updated(logging=exp.logging.model_copy(update={"tensorboard": False}))
    trainable = tune.with_resources(instant_trainable, {"cpu": 1})
    if variant == "tune":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        from search.constraints import OptunaSpace

        searcher = OptunaSearch(
            space=OptunaSpace(exp), metric="video@1", mode="max", sampler=optuna.samplers.RandomSampler(seed=0)
        )
        return tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=trials, reuse_actors=True),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
        )
    from search import tuner as tuner_mod
    from search.progress import ProgressPrinter

    tuner_mod.make_trainable = lambda exp, indexes, directory: trainable
    if "journal" in without:
        tuner_mod.study_storage = lambda directory: None
    if "trials-file" in without:
        import search.progress

        search.progress.TrialsFileCallback = lambda directory: tune.Callback()
    callbacks = []
    if "progress" not in without:
        progress = ProgressPrinter.for_experiment(exp)
        progress.file = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
        callbacks.append(progress)
    return tuner_mod.make_tuner(exp, callbacks=callbacks)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--variant", choices=("tune", "starch"), required=True)
    p.add_argument("--trials", type=int, required=True)
    p.add_argument("--address", required=True)
    p.add_argument("--storage", required=True)
    p.add_argument(
        "--profile",
        help="write a pyinstrument profile of fit() here: HTML, text for a .txt name, or the session for a "
        ".pyisession name (`pyinstrument --load FILE -r text --show-all` renders it in full)",
    )
    p.add_argument(
        "--without",
        default="",
        help="starch only: comma-separated parts to leave out, of "
        + ", ".join(f"{k} ({v})" for k, v in WITHOUT.items()),
    )
    args = p.parse_args(argv)
    without = tuple(w for w in args.without.split(",") if w)
    if unknown := set(without) - set(WITHOUT):
        p.error(f"--without: unknown part(s) {sorted(unknown)}; valid: {', '.join(WITHOUT)}")
    import logging

    import ray
    import ray.cloudpickle

    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests/
    ray.init(address=args.address, log_to_driver=False, logging_level=logging.ERROR)
    tuner = make(args.variant, args.trials, args.storage, without)
    before = _memory_mb()
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    cpu0, start = _cpu_s(), time.perf_counter()
    settings = contextlib.nullcontext()
    if args.variant == "starch":
        from search.tuner import tune_settings

        settings = tune_settings()  # as search.run fits starch's tuner
    with settings:
        results = tuner.fit()
    wall, cpu = time.perf_counter() - start, _cpu_s() - cpu0
    if profiler is not None:
        profiler.stop()
        if args.profile.endswith(".pyisession"):
            profiler.last_session.save(args.profile)
        else:
            with open(args.profile, "w") as f:
                text = args.profile.endswith(".txt")
                f.write(profiler.output_text(unicode=True, color=False) if text else profiler.output_html())
    after = _memory_mb()
    errors = sum(r.error is not None for r in results)
    print(
        "RESULT "
        + json.dumps(
            {
                "variant": args.variant + "".join(f" -{w}" for w in without),
                "trials": len(results),
                "errors": errors,
                "fit_s": wall,
                "trials_per_s": len(results) / wall,
                "driver_cpu_s": cpu,
                "rss_before_mb": before["VmRSS"],
                "rss_after_mb": after["VmRSS"],
                "peak_mb": after["VmHWM"],
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
