"""The CPU fast paths of trainers/device.py, measured: channels_last_3d against contiguous tensors.

Run: pytest -m benchmark -s tests/benchmarks/test_cpu_fast_paths.py

One thread (a one-CPU Ray trial), batch 16, 8×32×32 clips, the demo's networks at their demo
widths. A and B are interleaved: each of 3 rounds times a few training steps (forward, backward,
SGD step) of the contiguous model, then of the channels-last one; the table gives the per-round
ratio channels-last / contiguous as min / median / max. It also checks that both formats compute
the same function (the memory format changes only the order of float sums).
"""

import statistics
import time

import pytest
import torch
import torch.nn.functional as F

from spaces import build, named

NETWORKS = [("r3d_18", 8), ("mc3", 13), ("rmc3", 8), ("r2plus1d_18", 8), ("f-r2d", 13)]


def _step_time(model, clips, labels, optimizer, steps=4) -> float:
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(clips), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@pytest.mark.benchmark
def test_channels_last_3d_against_contiguous_on_cpu():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for name, k in NETWORKS:
            spec = named(name, width=k, frames=8, sampling_rate=2, crop=32, num_classes=8)
            clips, labels = torch.randn(16, 3, 8, 32, 32), torch.randint(0, 8, (16,))
            setups = {}
            for channels_last in (False, True):
                torch.manual_seed(0)
                model = build(spec)
                x = clips
                if channels_last:
                    model = model.to(memory_format=torch.channels_last_3d)
                    x = clips.contiguous(memory_format=torch.channels_last_3d)
                with torch.no_grad():
                    model.eval()
                    out = model(x)
                    model.train()
                setups[channels_last] = (model, x, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), out)
                _step_time(*setups[channels_last][:2], labels, setups[channels_last][2], steps=2)  # warm-up
            torch.testing.assert_close(setups[True][3], setups[False][3], rtol=1e-3, atol=1e-4)
            ratios, a, b = [], [], []
            for _ in range(3):
                a.append(_step_time(setups[False][0], setups[False][1], labels, setups[False][2]))
                b.append(_step_time(setups[True][0], setups[True][1], labels, setups[True][2]))
                ratios.append(b[-1] / a[-1])
            rows.append((name, k, statistics.median(a), statistics.median(b), ratios))
    finally:
        torch.set_num_threads(threads)
    print(f"\n{'network':12s} {'k':>3s} {'contiguous':>11s} {'channels-last':>14s}  ratio min / median / max")
    for name, k, a, b, r in rows:
        print(
            f"{name:12s} {k:3d} {a * 1e3:9.1f}ms {b * 1e3:12.1f}ms  "
            f"{min(r):.2f} / {statistics.median(r):.2f} / {max(r):.2f}"
        )
    assert all(a > 0 and b > 0 for _, _, a, b, _ in rows)
