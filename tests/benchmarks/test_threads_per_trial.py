"""Threads and trials per core on a CPU, measured: which way a demo trial should use the cores.

Run: pytest -m benchmark -s tests/benchmarks/test_threads_per_trial.py
     STARCH_BENCH_ROUNDS=3 STARCH_BENCH_NETWORKS=R3D-18,MC3 STARCH_BENCH_EPOCHS=3 pytest …

On a machine of C cores (os.cpu_count()), for each network (the demo's, at their demo widths, on
the benchmark's 8-class × 20-video synthetic set, frame cache on, data in the trial's process):

    C × 1      C trials side by side, 1 torch thread each (cpus_per_trial: 1, as Ray sets it)
    1 × C      one trial at a time with C intra-op threads (cpus_per_trial: C)
    C × C      C trials side by side, C threads each (oversubscribed: a trial that ignores its share)

Each configuration runs C trials in all (1 × C runs them one after another), each in a spawned
process that imports torch first and then waits at a barrier, so the import is not timed. The
measure is trial-seconds: the configuration's wall time ÷ C (lower is better), from the first
trial's start to the last one's end, evaluation and set-up included, as `run_trial` runs them; and
the steady-state training clips/s summed over the trials running at once. The configurations are
interleaved in every round; the table gives each configuration's time ÷ that of C × 1 in the same
round (min / median / max) and the load average when the run ended.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time

import pytest


def _child(cfg_dict: dict, threads: int, barrier, results) -> None:
    import torch

    from trainers.trial import TrialConfig, run_trial

    torch.set_num_threads(threads)
    cfg = TrialConfig.from_dict(cfg_dict)
    records = []
    barrier.wait()
    start = time.time()
    run_trial(cfg, lambda r, s: records.append(dict(r)))
    steady = records[1:] or records
    results.put((start, time.time(), statistics.median(r["train_clips_per_s"] for r in steady)))


def _run(cfg_dict: dict, trials_at_once: int, threads: int, batches: int) -> tuple[float, float]:
    """(wall seconds for `trials_at_once` × `batches` trials, summed steady clips/s of one batch)."""
    ctx = mp.get_context("spawn")
    spans, speeds = [], []
    for _ in range(batches):
        barrier, results = ctx.Barrier(trials_at_once), ctx.Queue()
        procs = [ctx.Process(target=_child, args=(cfg_dict, threads, barrier, results)) for _ in range(trials_at_once)]
        for p in procs:
            p.start()
        got = [results.get(timeout=1800) for _ in procs]
        for p in procs:
            p.join()
        spans.append(max(e for _, e, _ in got) - min(s for s, _, _ in got))
        speeds.append(sum(c for _, _, c in got))
    return sum(spans), statistics.median(speeds)


@pytest.mark.benchmark
@pytest.mark.timeout(4 * 3600)
def test_trials_side_by_side_against_threads_per_trial(tmp_path):
    import dataclasses

    from tests.benchmarks.test_trial_overhead import demo_trials
    from trainers.data.synth import write_synthetic_dataset

    cores = os.cpu_count() or 1
    rounds = int(os.environ.get("STARCH_BENCH_ROUNDS", "3"))
    epochs = int(os.environ.get("STARCH_BENCH_EPOCHS", "3"))
    wanted = os.environ.get("STARCH_BENCH_NETWORKS", "R3D-18,MC3").split(",")
    data_dir = tmp_path / "motion"
    write_synthetic_dataset(data_dir, classes=8, videos_per_class=20, frames=48, size=(32, 44), seed=0)
    os.environ["STARCH_CACHE"] = str(tmp_path / "cache")  # the children's frame cache
    trials, _ = demo_trials(data_dir, batch_size=16, workers=0)
    configs = {
        f"{cores} × 1": (cores, 1, 1),  # trials at once, threads each, batches of trials
        f"1 × {cores}": (1, cores, cores),
        f"{cores} × {cores}": (cores, cores, 1),
    }
    print(f"\n{cores} cores, {rounds} interleaved rounds, {epochs} epochs per trial\n")
    print(
        "| network | configuration | s per trial (median) | ÷ C × 1 (min / median / max) | steady clips/s, all trials at once |"
    )
    print("| --- | --- | ---: | ---: | ---: |")
    for name in wanted:
        cfg = trials[name]
        cfg = dataclasses.replace(cfg, recipe=dataclasses.replace(cfg.recipe, epochs=epochs))
        _run(cfg.to_dict(), 1, 1, 1)  # the frame cache and the page cache warm
        times: dict[str, list[float]] = {c: [] for c in configs}
        speeds: dict[str, list[float]] = {c: [] for c in configs}
        for _ in range(rounds):
            for label, (at_once, threads, batches) in configs.items():
                wall, speed = _run(cfg.to_dict(), at_once, threads, batches)
                times[label].append(wall / cores)
                speeds[label].append(speed)
        base = times[f"{cores} × 1"]
        for label in configs:
            ratios = [t / b for t, b in zip(times[label], base)]
            print(
                f"| {name} | {label} | {statistics.median(times[label]):.1f} | "
                f"{min(ratios):.2f} / {statistics.median(ratios):.2f} / {max(ratios):.2f} | "
                f"{statistics.median(speeds[label]):.0f} |"
            )
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
