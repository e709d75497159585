"""How close a training step runs to the machine's limit, per network and batch size.

Run: pytest -m benchmark -s tests/benchmarks/test_efficiency.py
     STARCH_BENCH_THREADS=2 STARCH_BENCH_COMPILE=1 pytest …   (CPU: threads, torch.compile)

    achieved FLOP/s = 3 × 2 × cost(spec).flops × batch / step time
        cost().flops are multiply-accumulates per clip (the papers' convention): × 2 FLOPs per MAC,
        × 3 for forward + backward (trainers.device.training_flops); a step is forward, backward
        and the SGD update, on clips already on the device; step time = the best of 5 steps, the
        same statistic as the peak's (so a step the OS preempted on a shared machine does not count)
    efficiency = achieved ÷ peak, the peak being `Runtime.peak_flops()`: the best FLOP/s of a dense
        matmul on the same device and threads, in the step's dtype, measured before each network

The device, precision and memory format are trainers/device.py's (`Runtime.select("auto")`): on
this CPU fp32 and channels-last 3D, one thread by default (a demo trial); where CUDA exists the
same script runs bf16 autocast, channels-last, cudnn.benchmark and torch.compile (the peak is then
a bf16 matmul), at 16×112×112 clips instead of the demo's 8×32×32.
"""

import os
import time

import pytest
import torch

from spaces import build, cost, named
from tests.benchmarks.test_cpu_compile_bf16 import train_step
from trainers.device import Runtime, training_flops

# the demo's networks at the demo's widths (0.5M-parameter budget), and a P3D
NETWORKS = [
    ("r3d_18", 8),
    ("mc3", 13),
    ("rmc3", 8),
    ("r2plus1d_18", 8),
    ("f-r2d", 13),
    ("p3d_b_50", 8),
]


def _settings(runtime: Runtime) -> tuple[dict, tuple[int, ...], bool]:
    if runtime.device.type == "cpu":
        geometry = dict(frames=8, sampling_rate=2, crop=32)
        return geometry, (8, 16), os.environ.get("STARCH_BENCH_COMPILE", "0") == "1"
    return dict(frames=16, sampling_rate=2, crop=112), (16, 64), os.environ.get("STARCH_BENCH_COMPILE", "1") == "1"


def _step_time(model, clips, labels, optimizer, runtime: Runtime, steps: int) -> float:
    times = []
    for _ in range(steps):
        runtime.synchronize()
        t0 = time.perf_counter()
        train_step(model, clips, labels, optimizer, runtime)
        runtime.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)  # the best step, the same statistic as the peak's best matmul: preemption excluded


@pytest.mark.benchmark
@pytest.mark.timeout(3600)
def test_training_step_efficiency_against_a_matmul_peak():
    threads = torch.get_num_threads()
    runtime = Runtime.select("auto")
    if runtime.device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("STARCH_BENCH_THREADS", "1")))
    geometry, batches, compile_ = _settings(runtime)
    rows = []
    try:
        for name, k in NETWORKS:
            spec = named(name, width=k, num_classes=8, **geometry)
            macs = cost(spec).flops
            torch.manual_seed(0)
            model = runtime.prepare_model(build(spec))
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            step_model = torch.compile(model) if compile_ else model
            peak = runtime.peak_flops()
            for batch in batches:
                clips = runtime.to_device(torch.randn(batch, 3, spec.frames, spec.crop, spec.crop))
                labels = torch.randint(0, 8, (batch,), device=runtime.device)
                _step_time(step_model, clips, labels, optimizer, runtime, steps=2)  # warm-up (and compile)
                step = _step_time(step_model, clips, labels, optimizer, runtime, steps=5)
                achieved = training_flops(macs) * batch / step
                rows.append((name, k, batch, macs / 1e9, step, achieved, peak))
    finally:
        torch.set_num_threads(threads)
    print(
        f"\n{runtime.device} {runtime.precision} channels_last={runtime.channels_last} compile={compile_} "
        f"threads={torch.get_num_threads() if runtime.device.type != 'cpu' else os.environ.get('STARCH_BENCH_THREADS', '1')} "
        f"clips {geometry['frames']}×{geometry['crop']}×{geometry['crop']}"
    )
    print(
        f"{'network':12s} {'k':>3s} {'batch':>5s} {'GMACs/clip':>10s} {'step ms':>8s} "
        f"{'achieved GFLOP/s':>17s} {'peak GFLOP/s':>13s} {'efficiency':>10s}"
    )
    for name, k, batch, gmacs, step, achieved, peak in rows:
        print(
            f"{name:12s} {k:3d} {batch:5d} {gmacs:10.4f} {step * 1e3:8.1f} "
            f"{achieved / 1e9:17.2f} {peak / 1e9:13.1f} {achieved / peak:10.1%}"
        )
    assert all(0 < achieved < 2 * peak for *_, achieved, peak in rows)
