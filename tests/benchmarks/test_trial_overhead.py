"""A trial's training speed against a bare PyTorch loop over the same network, clip and batch.

Run: pytest -m benchmark -s tests/benchmarks/test_trial_overhead.py
     STARCH_BENCH_THREADS=2 STARCH_BENCH_ROUNDS=3 STARCH_BENCH_NETWORKS=r3d_18 pytest …

The demo's six networks at their demo widths (the demo preset planned as `starch demo` plans it,
first seed of each), on the demo's synthetic benchmark at a smaller size (8 classes × 20 videos,
frame cache on, `num_workers` 0 as the demo has it, `STARCH_BENCH_WORKERS` to change). Per round
and network, interleaved: `run_trial` for `STARCH_BENCH_EPOCHS` epochs (default 4; the demo's
recipe otherwise, evaluation every 2nd epoch and the last) — its steady-state training clips/s is
the median of the epochs after the first — then a bare loop (forward, cross-entropy, backward, SGD
step on one random batch held in memory) with contiguous tensors and with channels_last_3d. The
table gives the trial ÷ the faster bare loop per round (min / median / max), by wall time and by
CPU time (clips per CPU-second of this process: on a machine shared with other work the wall time
measures the neighbours too), and the share of the steady epochs' wall time each phase took (the
records' `phase_<name>_s`; "other" is the loop's bookkeeping).
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


def trial_speed(cfg, indexes, epochs: int) -> tuple[float, float, dict[str, float], float]:
    """(steady-state train clips/s, clips per CPU-second of the training passes, phase seconds
    summed over the steady epochs, their wall). The CPU time is this process's (time.process_time)
    around each `train_one_epoch` of the trial: on a shared machine it counts the work, not the wait."""
    import dataclasses

    import trainers.loop
    from trainers.trial import run_trial

    cfg = dataclasses.replace(cfg, recipe=dataclasses.replace(cfg.recipe, epochs=epochs))
    records, cpu = [], []
    plain = trainers.loop.train_one_epoch

    def counted(*args, **kwargs):
        start = time.process_time()
        out = plain(*args, **kwargs)
        cpu.append(out["train_clips"] / (time.process_time() - start))
        return out

    trainers.loop.train_one_epoch = counted
    try:
        run_trial(cfg, lambda r, s: records.append(dict(r)), indexes=indexes)
    finally:
        trainers.loop.train_one_epoch = plain
    steady = records[1:] or records
    phases: dict[str, float] = {}
    for r in steady:
        for k, v in r.items():
            if k.startswith("phase_") and k.endswith("_s"):
                phases[k[6:-2]] = phases.get(k[6:-2], 0.0) + v
    wall = sum(r.get("epoch_wall_s", 0.0) for r in steady)
    return statistics.median(r["train_clips_per_s"] for r in steady), statistics.median(cpu[1:] or cpu), phases, wall


def bare_speed(
    arch, batch_size: int, channels_last: bool, precision: str = "auto", steps: int = 8
) -> tuple[float, float]:
    """(clips/s, clips per CPU-second) of forward + loss + backward + SGD step on one random batch,
    after 2 warm-up steps, on the device and in the precision the trial gets (fp32 on a CPU,
    autocast on a GPU)."""
    from spaces import build
    from trainers.device import Runtime

    runtime = Runtime.select(precision)
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
            start, cpu = time.perf_counter(), time.process_time()
        with runtime.autocast():
            logits = model(clips)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        if runtime.scaler is not None:
            runtime.scaler.scale(loss).backward()
            runtime.scaler.step(optimizer)
            runtime.scaler.update()
        else:
            loss.backward()
            optimizer.step()
    runtime.synchronize()
    return steps * batch_size / (time.perf_counter() - start), steps * batch_size / (time.process_time() - cpu)


@pytest.mark.benchmark
@pytest.mark.timeout(3 * 3600)
def test_trial_against_bare_loop(tmp_path):
    from trainers.data.synth import write_synthetic_dataset

    threads, rounds = int(os.environ.get("STARCH_BENCH_THREADS", "1")), int(os.environ.get("STARCH_BENCH_ROUNDS", "3"))
    epochs = int(os.environ.get("STARCH_BENCH_EPOCHS", "4"))
    batch_size = int(os.environ.get("STARCH_BENCH_BATCH", "16"))
    workers = int(os.environ.get("STARCH_BENCH_WORKERS", "0"))
    wanted = [n for n in os.environ.get("STARCH_BENCH_NETWORKS", "").split(",") if n]
    data_dir = tmp_path / "motion"
    write_synthetic_dataset(data_dir, classes=8, videos_per_class=20, frames=48, size=(32, 44), seed=0)
    trials, indexes = demo_trials(data_dir, batch_size, workers)
    trials = {n: c for n, c in trials.items() if not wanted or n in wanted}
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    results: dict[str, dict[str, list]] = {
        n: {k: [] for k in ("trial", "bare", "cpu", "bare_cpu", "phases")} for n in trials
    }
    try:
        for _ in range(rounds):
            for name, cfg in trials.items():
                speed, cpu, phases, wall = trial_speed(cfg, indexes, epochs)
                precision = cfg.recipe.precision
                contiguous = bare_speed(cfg.arch, batch_size, channels_last=False, precision=precision)
                last = bare_speed(cfg.arch, batch_size, channels_last=True, precision=precision)
                r = results[name]
                r["trial"].append(speed)
                r["cpu"].append(cpu)
                r["bare"].append(max(contiguous[0], last[0]))  # the fastest bare loop, by wall and by CPU
                r["bare_cpu"].append(max(contiguous[1], last[1]))
                r["phases"].append((phases, wall))
    finally:
        torch.set_num_threads(before)
    load = os.getloadavg()[0]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(
        f"\n{threads} thread(s), batch {batch_size}, {rounds} interleaved rounds, data workers {workers}, "
        f"{epochs} epochs (eval every {next(iter(trials.values())).recipe.eval_every}), load average {load:.1f}, {device}\n"
    )
    med = statistics.median
    print(
        "| network | k | trial clips/s | fastest bare clips/s | ÷ (min / median / max) "
        "| trial clips/CPU-s | bare clips/CPU-s | ÷ (min / median / max) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        wall = [t / b for t, b in zip(r["trial"], r["bare"])]
        cpu = [t / b for t, b in zip(r["cpu"], r["bare_cpu"])]
        print(
            f"| {name} | {trials[name].arch.width} | {med(r['trial']):.0f} | {med(r['bare']):.0f} "
            f"| {min(wall):.2f} / {med(wall):.2f} / {max(wall):.2f} | {med(r['cpu']):.0f} | {med(r['bare_cpu']):.0f} "
            f"| {min(cpu):.2f} / {med(cpu):.2f} / {max(cpu):.2f} |"
        )
    names = list(dict.fromkeys(k for r in results.values() for p, _ in r["phases"] for k in p))
    if names:
        print("\nshare of the steady epochs' wall time per phase (median over rounds)\n")
        print("| network | " + " | ".join(names) + " | other |")
        print("| --- |" + " ---: |" * (len(names) + 1))
        for name, r in results.items():
            shares = {k: med(p.get(k, 0.0) / w for p, w in r["phases"] if w > 0) for k in names}
            other = 1 - sum(shares.values())
            print(f"| {name} | " + " | ".join(f"{100 * shares[k]:.1f} %" for k in names) + f" | {100 * other:.1f} % |")
    assert all(all(v > 0 for v in r["trial"]) for r in results.values())


@pytest.mark.benchmark
def test_cpu_time_of_a_cached_training_clip(tmp_path):
    """CPU milliseconds per training clip read from the frame cache by the trial's loader in its own
    process (num_workers 0, one thread, the demo's 8×32×32 clips, batch 16): 10 epochs of 120
    clips after one that builds the cache, min / median / max of 3 rounds."""
    from trainers.data.datasets import DataSpec
    from trainers.data.loader import make_loader
    from trainers.data.synth import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "motion", classes=8, videos_per_class=20, frames=48, size=(32, 44), seed=0)
    spec = DataSpec(
        format="ucf101",
        root=str(tmp_path / "motion"),
        resize=None,
        num_workers=0,
        batch_size=16,
        clip_len=8,
        sampling_rate=2,
        crop=32,
        cache=True,
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    loader = make_loader(spec, "train", seed=0)
    try:
        clips = sum(len(b["label"]) for b in loader)
        rounds = []
        for _ in range(3):
            start = time.process_time()
            for _ in range(10):
                for _ in loader:
                    pass
            rounds.append((time.process_time() - start) / (10 * clips) * 1e3)
    finally:
        loader.close()
        torch.set_num_threads(before)
    print(f"\nms CPU per cached training clip: {min(rounds):.3f} / {statistics.median(rounds):.3f} / {max(rounds):.3f}")
    assert all(r > 0 for r in rounds)
