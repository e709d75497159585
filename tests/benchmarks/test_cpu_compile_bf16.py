"""torch.compile and bf16 autocast on the CPU, measured on the demo's networks against eager fp32.

Run: pytest -m benchmark -s tests/benchmarks/test_cpu_compile_bf16.py

The demo's setting (search/presets/demo.yaml): one thread (a one-CPU Ray trial), batch 16, 8×32×32
clips, the demo's networks at their demo widths, and the memory format trainers/device.py picks
(`Runtime.select`, channels-last 3D on this CPU). Three variants of one training step (forward,
backward, SGD step):

    eager       Runtime.select("fp32"): what a demo trial runs today
    compile     the same model under torch.compile (inductor), as `recipe.compile: true` does
    bf16        Runtime.select("bf16"): bf16 autocast on the CPU

Compile time (the first two steps of the compiled model, minus two eager steps) is reported apart
and amortised over a demo trial: 900 training steps (12 epochs × 75). The steady-state step times
are interleaved: each of 3 rounds times 4 steps of eager and compiled, 1 of bf16 (on a CPU without bf16
units it is 14-19x slower); the table gives the medians
and the per-round ratio variant / eager as min / median / max. The amortised ratio is
(compile time + 900 × compiled step) / (900 × eager step).
"""

import os
import statistics
import time

import pytest
import torch
import torch.nn.functional as F

from spaces import build, named
from trainers.device import Runtime

# the demo's networks at the widths the demo's 0.5M budget solves to (plus R3D at k = 4)
NETWORKS = [("r3d_18", 8), ("mc3", 13), ("r2plus1d_18", 8), ("f-r2d", 13), ("rmc3", 8), ("r3d_18", 4)]
if os.environ.get("STARCH_BENCH_NETWORKS"):  # e.g. "mc3:13,r2plus1d_18:8": a subset on a busy machine
    NETWORKS = [(n, int(k)) for n, k in (x.split(":") for x in os.environ["STARCH_BENCH_NETWORKS"].split(","))]
DEMO_STEPS = 12 * 75  # epochs × updates per epoch in the demo preset


def train_step(model, clips, labels, optimizer, runtime) -> None:
    """One optimiser step as a trial takes it (autocast per the runtime); test_efficiency times it too."""
    with runtime.autocast():
        logits = model(clips)
    loss = F.cross_entropy(logits.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _time_steps(setup, labels, steps: int) -> float:
    model, clips, optimizer, runtime = setup
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step(model, clips, labels, optimizer, runtime)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _setup(spec, clips, variant):
    runtime = Runtime.select("bf16" if variant == "bf16" else "fp32", torch.device("cpu"))
    torch.manual_seed(0)
    model = runtime.prepare_model(build(spec))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if variant == "compile":
        model = torch.compile(model)
    return model, runtime.to_device(clips), optimizer, runtime


def _row(name, k, step, ratios, compile_s, amortised) -> str:
    r = {v: f"{min(x):.2f} / {statistics.median(x):.2f} / {max(x):.2f}" for v, x in ratios.items()}
    return (
        f"{step['eager'] * 1e3:6.1f}ms {step['compile'] * 1e3:6.1f}ms {step['bf16'] * 1e3:6.1f}ms  "
        f"{r['compile']:>18s}  {r['bf16']:>18s}  {compile_s:9.1f}  {amortised:21.2f}"
    )


@pytest.mark.benchmark
@pytest.mark.timeout(3 * 3600)  # compiling six networks' training steps on a loaded 2-core machine
def test_compile_and_bf16_against_eager_on_cpu():
    import torch._dynamo

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    variants = ("eager", "compile", "bf16")
    rows = []
    try:
        for name, k in NETWORKS:
            spec = named(name, width=k, frames=8, sampling_rate=2, crop=32, num_classes=8)
            clips, labels = torch.randn(16, 3, 8, 32, 32), torch.randint(0, 8, (16,))
            setups = {v: _setup(spec, clips, v) for v in variants}
            # the same function: compare the first forward of each variant (train mode, same weights)
            with torch.no_grad():
                ref = setups["eager"][0](setups["eager"][1])
                for v in ("compile", "bf16"):
                    model, x, _, runtime = setups[v]
                    with runtime.autocast():
                        out = model(x).float()
                    tol = dict(rtol=5e-2, atol=5e-2) if v == "bf16" else dict(rtol=1e-3, atol=1e-4)
                    torch.testing.assert_close(out, ref, **tol)
            torch._dynamo.reset()  # the no-grad forward above compiled an inference graph; time a fresh compile
            setups["compile"] = _setup(spec, clips, "compile")
            t0 = time.perf_counter()
            _time_steps(setups["compile"], labels, steps=2)  # forward + backward graphs compile here
            first_compiled = time.perf_counter() - t0
            t0 = time.perf_counter()
            _time_steps(setups["eager"], labels, steps=2)
            first_eager = time.perf_counter() - t0
            _time_steps(setups["bf16"], labels, steps=1)  # warm-up
            compile_s = max(0.0, first_compiled - first_eager)
            median = {v: [] for v in variants}
            for _ in range(3):
                for v in variants:  # bf16 runs ~15× slower than fp32 on an AVX2 CPU: one step per round
                    median[v].append(_time_steps(setups[v], labels, steps=1 if v == "bf16" else 4))
            ratios = {v: [b / a for a, b in zip(median["eager"], median[v])] for v in ("compile", "bf16")}
            step = {v: statistics.median(median[v]) for v in variants}
            amortised = (compile_s + DEMO_STEPS * step["compile"]) / (DEMO_STEPS * step["eager"])
            rows.append((name, k, step, ratios, compile_s, amortised))
            print(f"\n{name} k={k}: {_row(*rows[-1])}", flush=True)  # a row at a time: compiling is slow
            torch._dynamo.reset()
    finally:
        torch.set_num_threads(threads)
    print(
        f"\n{'network':12s} {'k':>3s} {'eager':>8s} {'compile':>8s} {'bf16':>8s}  "
        f"{'compile/eager':>18s}  {'bf16/eager':>18s}  {'compile s':>9s}  {'amortised (900 steps)':>21s}"
    )
    for row in rows:
        print(f"{row[0]:12s} {row[1]:3d} {_row(*row)}")
    assert all(s[v] > 0 for _, _, s, _, _, _ in rows for v in variants)
