"""The cost estimate on the command line: `--assume-tflops` for `starch search` and `starch promote`,
the estimate in `--dry-run` and at the top of a run's log, and RUN_DIR/starch_estimate.json.

The arithmetic is search.estimate's; here the throughput is obtained: given (`--assume-tflops`), from
a proxy run's records (`starch promote`), or measured now — in this process on a local run (the
machine the trials will use), or in Ray tasks holding one CPU and one trial's GPUs on a cluster (so on
one of its devices; a dry run on a cluster starts nothing, so it needs `--assume-tflops`).
"""

from __future__ import annotations

import json
import os
import time

from analysis.runfolder import ESTIMATE_FILE, write_text
from search.demo_plan import Sizes
from search.estimate import Estimate, Network, speeds_from_achieved, speeds_from_tflops

MEASURE_BATCHES = 2
MAX_MEASURED = 24  # distinct networks measured at most (a few seconds each); beyond, --assume-tflops


def add_arguments(parser) -> None:
    parser.add_argument(
        "--assume-tflops",
        type=float,
        metavar="T",
        help="predict the time at T×10^12 FLOP/s per trial (2 per multiply-accumulate; what a trial "
        "achieves, not the datasheet peak) instead of measuring each network first",
    )


def arch_key(arch) -> str:
    """analysis.results.arch_key of an ArchSpec: the same network on any dataset."""
    from analysis.results import arch_key as key

    return key(arch.to_dict())


def networks_of(candidates) -> list[Network]:
    """The distinct networks of a grid plan, in plan order, with their trial counts."""
    from spaces import cost

    counts: dict[str, int] = {}
    archs: dict[str, object] = {}
    for c in candidates:
        key = arch_key(c.arch)
        counts[key] = counts.get(key, 0) + 1
        archs.setdefault(key, c.arch)
    names = [a.name for a in archs.values()]
    out = []
    for key, arch in archs.items():
        label = arch.name
        if names.count(arch.name) > 1:
            label += f" k={arch.width} L={arch.frames} s={arch.sampling_rate} crop={arch.crop}"
        out.append(Network(key, label, cost(arch).gflops, counts[key]))
    return out


def concurrency(exp, total: dict[str, float], trials: int) -> int:
    """Trials side by side on `total` resources (Ray's CPU/GPU counts), as Tune will schedule them."""
    r = exp.resources
    slots = int(total.get("CPU", 1) // max(r.cpus_per_trial * r.workers_per_trial, 1e-9))
    if r.uses_gpus and not r.auto_gpus and r.gpus_per_trial:
        slots = min(slots, int(total.get("GPU", 0) // (r.gpus_per_trial * r.workers_per_trial)))
    if r.max_concurrent_trials:
        slots = min(slots, r.max_concurrent_trials)
    return max(1, min(slots, trials))


def estimate(
    exp,
    candidates,
    indexes: dict | None,
    *,
    tflops: float | None = None,
    achieved: tuple[dict[str, float], dict[str, float]] | None = None,
    measure: str | None = "local",
    total: dict[str, float] | None = None,
) -> Estimate:
    """The estimate of a grid plan. `achieved`: (arch key → training GFLOP/s, arch key → seconds
    outside the training epochs) that a proxy recorded;
    `measure`: "local" (in this process), "ray" (Ray tasks, Ray running) or None (do not);
    `total`: the cluster's resources (None: unknown, one trial at a time)."""
    networks = networks_of(candidates)
    sizes = Sizes(len(indexes["train"]), len(indexes["test"]), exp.data.eval_clips) if indexes else None
    r = exp.resources
    device = "GPU" if r.uses_gpus else "CPU"
    per_trial = (
        (1.0 if r.auto_gpus else float(r.gpus_per_trial)) if r.uses_gpus else float(r.cpus_per_trial)
    ) * r.workers_per_trial
    trials = sum(n.trials for n in networks)
    slots = concurrency(exp, total, trials) if total else (r.max_concurrent_trials or 1)
    speeds: dict[str, dict[str, float]] = {}
    startup = 0.0
    if tflops is not None:
        speeds = speeds_from_tflops(networks, tflops)
        source = f"assumed {tflops:g} TFLOP/s per trial (--assume-tflops)"
    elif achieved is not None:
        speeds = speeds_from_achieved(networks, *achieved)
        source = (
            f"the proxy run's records: each network's achieved training FLOP/s there ({len(speeds)} of "
            f"{len(networks)} networks recorded it), at its FLOPs per clip here"
        )
    elif sizes is None:
        source = "not measured: no dataset to read clips from (--data FORMAT:ROOT), or give --assume-tflops"
    elif measure is not None and len(networks) > MAX_MEASURED:
        source = (
            f"not measured: {len(networks)} distinct networks (at most {MAX_MEASURED} are measured, a few "
            "seconds each); give --assume-tflops"
        )
    elif measure == "local":
        speeds, took = _measure_here(exp, candidates, indexes)
        source = (
            f"measured now in this process: {MEASURE_BATCHES} training and evaluation batches of each network, "
            f"{r.cpus_per_trial:g} thread(s) as a trial gets ({took:.0f} s)"
        )
    elif measure == "ray":
        from search.demo_plan import measure_networks

        start = time.perf_counter()
        speeds, startup = measure_networks(
            candidates,
            exp.to_data(),
            indexes,
            exp.schedule,
            concurrency=min(slots, len(networks)),
            batches=MEASURE_BATCHES,
            num_gpus=(1.0 if r.auto_gpus else float(r.gpus_per_trial)) if r.uses_gpus else 0,
            key=arch_key,
        )
        source = (
            f"measured now on the cluster: {MEASURE_BATCHES} batches of each network in Ray tasks with one "
            f"trial's {device}s ({time.perf_counter() - start:.0f} s)"
        )
    else:
        source = (
            "not measured in a dry run on a cluster (--address): give --assume-tflops, or see the top of the run's log"
        )
    if total is None and not r.max_concurrent_trials:
        source += "; cluster size unknown here, so one trial at a time"
    return Estimate(
        networks=networks,
        sizes=sizes,
        epochs=exp.schedule.epochs,
        eval_every=exp.schedule.eval_every,
        source=source,
        speeds=speeds,
        concurrency=slots,
        startup_s=startup,
        devices_per_trial=per_trial,
        device=device,
    )


def _measure_here(exp, candidates, indexes) -> tuple[dict[str, dict[str, float]], float]:
    """trainers.speed.measure of each distinct network, one after the other, in this process."""
    from trainers.speed import measure

    start = time.perf_counter()
    archs = {arch_key(c.arch): c.arch for c in candidates}
    threads = max(1, int(exp.resources.cpus_per_trial))
    data = exp.to_data()
    speeds, failed = {}, []
    for key, arch in archs.items():
        try:
            speeds[key] = measure(arch, data, indexes, exp.schedule, batches=MEASURE_BATCHES, threads=threads).to_dict()
        except (RuntimeError, ValueError) as exc:  # no usable clip for this network, a spec the data cannot feed …
            failed.append(f"{arch.name}: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}")
    if failed:  # the estimate goes on without them; their trials will meet the same problem
        print(f"note: could not measure {len(failed)} network(s), left out of the estimate: " + "; ".join(failed[:3]))
    return speeds, time.perf_counter() - start


def local_total(exp) -> dict[str, float] | None:
    """What the local Ray will have (None when the run joins a cluster: unknown before Ray starts)."""
    if exp.cluster.address:
        return None
    from search.run import local_resources

    return local_resources(exp)


def candidates_for(exp) -> tuple[list, str | None]:
    """The trials to estimate, and a note when they are not the run's exact list: a grid's plan;
    for a sampling searcher every feasible point of the space once (it samples num_samples of them)."""
    from search.constraints import Candidate, check_point
    from search.tuner import plan

    if exp.search.algorithm == "grid":
        note = None
        if exp.scheduler.type != "fifo":
            note = f"an upper bound: {exp.scheduler.type} stops some trials before the last epoch"
        return plan(exp).candidates, note
    space = exp.to_space()
    feasible = []
    for point in space.grid():
        arch, why = check_point(exp, space, point)
        if why is None:
            feasible.append(Candidate.of(exp, point, arch))
    return feasible, (
        f"{exp.search.algorithm} samples {exp.search.num_samples} trial(s) from these {len(feasible)} feasible "
        "points: the estimate trains each point once"
    )


def print_estimate(est: Estimate, note: str | None = None) -> None:
    print("\n".join(est.lines() + ([f"  ({note})"] if note else [])), flush=True)


def _estimate_and_print(exp, indexes, tflops, achieved, *, measure: str | None, total) -> Estimate:
    """The estimate of `exp`'s candidates, printed (with the note on how they were chosen)."""
    candidates, note = candidates_for(exp)
    est = estimate(exp, candidates, indexes, tflops=tflops, achieved=achieved, measure=measure, total=total)
    print_estimate(est, note)
    return est


def dry_run(exp, indexes: dict | None, tflops: float | None, achieved=None) -> Estimate:
    """The estimate a dry run prints: measured here on a local run, not on a cluster (nothing starts)."""
    measure = None if exp.cluster.address else "local"
    return _estimate_and_print(exp, indexes, tflops, achieved, measure=measure, total=local_total(exp))


def announcer(tflops: float | None = None, achieved=None):
    """The hook search.run.fit calls once Ray is up: estimate, print (the top of the run's log) and
    write RUN_DIR/starch_estimate.json."""

    def announce(exp, indexes, directory: str) -> None:
        if not wants_estimate():
            return
        import ray

        measure = "ray" if exp.cluster.address else "local"
        total = {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
        est = _estimate_and_print(exp, indexes, tflops, achieved, measure=measure, total=total)
        write_text(directory, ESTIMATE_FILE, json.dumps({**est.to_dict(), "written": time.time()}, indent=1))

    return announce


def wants_estimate() -> bool:
    """STARCH_NO_ESTIMATE=1 skips the estimate at a run's start (tests that do not look at it)."""
    return os.environ.get("STARCH_NO_ESTIMATE", "") in ("", "0")
