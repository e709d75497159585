"""A trial's training speed against a bare PyTorch loop over the same network, clip and batch.

Run: pytest -m benchmark -s tests/benchmarks/test_trial_overhead.py
     STARCH_BENCH_THREADS=2 STARCH_BENCH_ROUNDS=3 STARCH_BENCH_NETWORKS=r3d_18 pytest …

The demo's six networks at their demo widths (the demo preset planned as `starch demo` plans it,
first seed of each), on the demo's synthetic benchmark at a smaller size (8 classes × 20 videos,
frame cache on, `num_workers` 0 as the demo has it, `STARCH_BENCH_WORKERS` to change). Per round
and network, interleaved: `run_trial` for `STARCH_BENCH_EPOCHS` epochs (default 3; evaluation
every epoch, as the demo's eval_every 2 would leave the steady-state epochs unevaluated) — its
steady-state training clips/s is the median of the epochs after the first — then a bare loop
(forward, cross-entropy, backward, SGD step on one random batch held in memory) with contiguous
tensors and with channels_last_3d. The table gives the trial ÷ the faster bare loop per round
(min / median / max), and the share of the trial's time each phase took (the records' `phase_s`).
Runs unchanged on CUDA (the runtime picks the device; the bare loop synchronises before timing).
"""

from __future__ import annotations

import os
import statistics
import time

import pytest
import torch
import torch.nn.functional as F


def demo_trials(data_dir, batch_size: int, workers: int):
    from search.config import load_experiment
    from search.run import with_dataset_classes
    from search.tuner import plan
    from trainers.data.datasets import build_index
    from trainers.trial import TrialConfig

    overrides = {"data.root": str(data_dir), "data.batch_size": batch_size, "data.num_workers": workers}
    exp = load_experiment("demo", overrides=overrides)
    data = exp.to_data()
    indexes = {"train": build_index(data, "train"), "test": build_index(data, "test")}
    exp = with_dataset_classes(exp, indexes)
    first = {}
    for c in plan(exp).candidates:
        first.setdefault(c.arch.name, c.arch)
    return {name: TrialConfig(arch, data, exp.schedule) for name, arch in first.items()}, indexes


def trial_speed(cfg, indexes, epochs: int) -> tuple[float, dict[str, float], float]:
    """(steady-state train clips/s, phase seconds summed over the steady epochs, their wall)."""
    import dataclasses

    from trainers.trial import run_trial

    cfg = dataclasses.replace(cfg, recipe=dataclasses.replace(cfg.recipe, epochs=epochs, eval_every=1))
    records = []
    run_trial(cfg, lambda r, s: records.append(dict(r)), indexes=indexes)
    steady = records[1:] or records
    phases: dict[str, float] = {}
    for r in steady:
        for k, v in (r.get("phase_s") or {}).items():
            phases[k] = phases.get(k, 0.0) + v
    wall = sum(r["reported_at"] - r.get("epoch_started_at", r["reported_at"]) for r in steady)
    return statistics.median(r["train_clips_per_s"] for r in steady), phases, wall


def bare_speed(arch, batch_size: int, channels_last: bool, steps: int = 8) -> float:
    """Clips/s of forward + loss + backward + SGD step on one random batch, after 2 warm-up steps."""
    from spaces import build
    from trainers.device import Runtime

    runtime = Runtime.select("fp32")  # the device the trial gets; fp32 as the demo's CPU trials
    device = runtime.device
    torch.manual_seed(0)
    model = build(arch).to(device)
    clips = torch.randn(batch_size, 3, arch.frames, arch.crop, arch.crop, device=device)
    labels = torch.randint(0, arch.num_classes, (batch_size,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        clips = clips.contiguous(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for i in range(steps + 2):
        if i == 2:
            runtime.synchronize()
            start = time.perf_counter()
        loss = F.cross_entropy(model(clips), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    runtime.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


@pytest.mark.benchmark
@pytest.mark.timeout(3 * 3600)
def test_trial_against_bare_loop(tmp_path):
    from trainers.data.synth import write_synthetic_dataset

    threads, rounds = int(os.environ.get("STARCH_BENCH_THREADS", "1")), int(os.environ.get("STARCH_BENCH_ROUNDS", "3"))
    epochs = int(os.environ.get("STARCH_BENCH_EPOCHS", "3"))
    batch_size = int(os.environ.get("STARCH_BENCH_BATCH", "16"))
    workers = int(os.environ.get("STARCH_BENCH_WORKERS", "0"))
    wanted = [n for n in os.environ.get("STARCH_BENCH_NETWORKS", "").split(",") if n]
    data_dir = tmp_path / "motion"
    write_synthetic_dataset(data_dir, classes=8, videos_per_class=20, frames=48, size=(32, 44), seed=0)
    trials, indexes = demo_trials(data_dir, batch_size, workers)
    trials = {n: c for n, c in trials.items() if not wanted or n in wanted}
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    results: dict[str, dict[str, list]] = {n: {"trial": [], "contig": [], "cl": [], "phases": []} for n in trials}
    try:
        for _ in range(rounds):
            for name, cfg in trials.items():
                speed, phases, wall = trial_speed(cfg, indexes, epochs)
                r = results[name]
                r["trial"].append(speed)
                r["phases"].append((phases, wall))
                r["contig"].append(bare_speed(cfg.arch, batch_size, channels_last=False))
                r["cl"].append(bare_speed(cfg.arch, batch_size, channels_last=True))
    finally:
        torch.set_num_threads(before)
    load = os.getloadavg()[0]
    print(
        f"\n{threads} thread(s), batch {batch_size}, {rounds} interleaved rounds, data workers {workers}, "
        f"load average {load:.1f}, {torch.device('cuda' if torch.cuda.is_available() else 'cpu')}\n"
    )
    print(
        "| network | k | trial clips/s | bare contiguous | bare channels-last | trial ÷ fastest bare (min / median / max) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        ratios = [t / max(c, cl) for t, c, cl in zip(r["trial"], r["contig"], r["cl"])]
        med = statistics.median
        print(
            f"| {name} | {trials[name].arch.width} | {med(r['trial']):.0f} | {med(r['contig']):.0f} | {med(r['cl']):.0f} "
            f"| {min(ratios):.2f} / {med(ratios):.2f} / {max(ratios):.2f} |"
        )
    names = sorted({k for r in results.values() for p, _ in r["phases"] for k in p})
    if names:
        print("\nshare of the steady epochs' time per phase (median over rounds)\n")
        print("| network | " + " | ".join(names) + " |")
        print("| --- |" + " ---: |" * len(names))
        for name, r in results.items():
            shares = {k: statistics.median(p.get(k, 0.0) / w for p, w in r["phases"] if w > 0) for k in names}
            print(f"| {name} | " + " | ".join(f"{100 * shares[k]:.1f} %" for k in names) + " |")
    assert all(all(v > 0 for v in r["trial"]) for r in results.values())
