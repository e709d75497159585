"""Predicted (spaces.memory) against measured peak memory of one SGD training step.

Run: pytest -m benchmark -s tests/benchmarks/test_memory_prediction.py

CPU: torch's MemTracker (torch.distributed._tools.mem_tracker) counts the bytes of every tensor
storage allocated through the dispatcher (parameters, gradients, optimiser state, activations,
temporaries) — what torch allocated, not the process's RSS. CUDA (the same test, where a GPU
exists): torch.cuda.max_memory_allocated after reset_peak_memory_stats. The second step is measured
(the first creates the momentum buffers), with the clip batch created inside it as a loader would.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spaces import build, named
from spaces.memory import memory

# 2D, MC, rMC, R3D at two depths, R(2+1)D (paper and torchvision), R2D, 2.5D, P3D: tiny widths and
# inputs, so the whole table takes a few minutes on 2 CPU cores; the structure is the papers'.
NETWORKS = ["f-r2d", "mc3", "rmc3", "r3d_18", "r3d_34", "r2plus1d_18", "r2plus1d_18_tv", "r2d", "2.5d", "p3d_50"]
TINY = dict(width=8, frames=8, crop=48, num_classes=10)
BATCHES = (2, 8)


def measure_peak(spec, batch: int, device: str = "cpu", precision: str = "fp32") -> int:
    """Peak bytes torch allocated during the second training step of build(spec) on `device`."""
    torch.manual_seed(0)
    model = build(spec).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step():
        x = torch.randn(batch, 3, spec.frames, spec.crop, spec.crop, device=device)  # (B, C, T, H, W)
        y = torch.randint(0, spec.num_classes, (batch,), device=device)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        F.cross_entropy(logits.float(), y).backward()
        opt.step()

    step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(model, opt)
    with tracker:
        step()
    return int(sum(v["Total"] for v in tracker.get_tracker_snapshot("peak").values()))


def table(device: str, precision: str = "fp32"):
    rows = []
    for name in NETWORKS:
        spec = named(name, **TINY)
        for batch in BATCHES:
            predicted = memory(spec, batch, precision).peak
            measured = measure_peak(spec, batch, device, precision)
            rows.append((name, batch, predicted, measured, predicted / measured - 1))
    print(f"\n{device}, {precision}, {TINY}")
    print("| network | batch | predicted (MB) | measured (MB) | error |\n| --- | ---: | ---: | ---: | ---: |")
    for name, batch, p, m, err in rows:
        print(f"| {name} | {batch} | {p / 1e6:.2f} | {m / 1e6:.2f} | {err * 100:+.1f} % |")
    worst = max(abs(r[4]) for r in rows)
    print(f"worst |error| {worst * 100:.1f} % over {len(rows)} rows")
    return rows


@pytest.mark.benchmark
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_memory_prediction_cpu(precision):
    rows = table("cpu", precision)
    assert all(abs(r[4]) <= 0.15 for r in rows), "some network is outside ±15 %"


@pytest.mark.benchmark
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_memory_prediction_cuda(precision):
    rows = table("cuda", precision)
    assert all(abs(r[4]) <= 0.15 for r in rows), "some network is outside ±15 %"
