"""cost() and the width solver never build a module: measure how much faster that is.

Run: pytest -m benchmark -s tests/benchmarks/test_cost_speed.py
"""

import time

import pytest

from spaces import build, cost, named
from spaces.width import solve_width


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@pytest.mark.benchmark
def test_cost_vs_build_and_count():
    rows = []
    for name in ["sr18", "mc3", "r2plus1d_18", "d34", "p3d_199"]:
        spec = named(name)
        t_build = best_of(lambda: sum(p.numel() for p in build(spec).parameters()), repeat=2)
        t_cost = best_of(lambda: cost(spec), repeat=20)
        t_solve = best_of(lambda: solve_width(spec, "33.2M", "nearest"), repeat=5)
        rows.append((name, cost(spec).mparams, t_build, t_cost, t_build / t_cost, t_solve))
    print()
    print(f"{'network':12s} {'params':>8s} {'build+count':>12s} {'cost()':>10s} {'speed-up':>9s} {'solve_width':>12s}")
    for name, mp, tb, tc, ratio, ts in rows:
        print(f"{name:12s} {mp:7.1f}M {tb * 1e3:10.1f}ms {tc * 1e3:8.3f}ms {ratio:8.0f}× {ts * 1e3:10.2f}ms")
    assert all(r[4] > 1 for r in rows)
