"""What starch's search driver adds to Ray Tune's own, as the number of trials grows.

Run: pytest -m benchmark -s tests/benchmarks/test_driver_scaling.py
     STARCH_DRIVER_TRIALS=10,100,1000 pytest …   (default 10,100: see the README for why)

For each N, plain Ray Tune and starch each drive N trials of a trainable that reports once and
returns (tests/benchmarks/driver_overhead.py says exactly what each variant runs: the same Optuna
random sampler over the same define-by-run space, one CPU per trial, actor reuse), each driver in
its own process on the session's 2-CPU cluster, the two variants interleaved (tune, starch, tune,
starch for N ≤ 100; one of each above). The table gives trials/s, the time per trial, starch's
time per trial ÷ Tune's, the driver's CPU seconds per trial (its own
work, which a loaded machine does not inflate as it does wall time) ÷ Tune's, and the driver's resident memory after fit() minus before (and per trial).
"""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _trials() -> list[int]:
    text = os.environ.get("STARCH_DRIVER_TRIALS", "10,100")
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"STARCH_DRIVER_TRIALS must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"STARCH_DRIVER_TRIALS needs trial counts >= 1, got {text!r}")
    return values


def run_driver(variant: str, trials: int, address: str, storage: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.driver_overhead", "--variant", variant, "--trials", str(trials)]
        + ["--address", address, "--storage", str(storage)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


@pytest.mark.benchmark
@pytest.mark.timeout(4 * 3600)
def test_driver_overhead_as_trials_grow(ray_cluster, tmp_path):
    rows = []
    for n in _trials():
        runs = {"tune": [], "starch": []}
        for round_ in range(2 if n <= 100 else 1):
            for variant in ("tune", "starch"):
                result = run_driver(variant, n, ray_cluster.address, tmp_path / f"{variant}-{n}-{round_}")
                assert result["trials"] == n and result["errors"] == 0, result
                runs[variant].append(result)
        rows.append((n, runs))
    print(
        f"\n{'trials':>6s} {'driver':7s} {'trials/s':>9s} {'wall s/trial':>13s} {'÷ tune':>7s} "
        f"{'driver CPU s/trial':>19s} {'÷ tune':>7s} {'RSS growth MB':>14s} {'KB/trial':>9s}"
    )
    for n, runs in rows:
        wall = {v: statistics.median(r["fit_s"] / n for r in rs) for v, rs in runs.items()}
        cpu = {v: statistics.median(r["driver_cpu_s"] / n for r in rs) for v, rs in runs.items()}
        for variant, rs in runs.items():
            growth = statistics.median(r["rss_after_mb"] - r["rss_before_mb"] for r in rs)
            print(
                f"{n:6d} {variant:7s} {1 / wall[variant]:9.2f} {wall[variant]:13.3f} {wall[variant] / wall['tune']:6.2f}× "
                f"{cpu[variant]:19.3f} {cpu[variant] / cpu['tune']:6.2f}× {growth:14.1f} {growth * 1024 / n:9.1f}"
            )
    print("(medians over rounds: 2 rounds at N <= 100, 1 above; each driver a fresh process)")
    assert all(r["fit_s"] > 0 for _, runs in rows for rs in runs.values() for r in rs)
