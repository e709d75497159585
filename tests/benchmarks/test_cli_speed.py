"""How long the light commands take, against the torch import they avoid.

Run: pytest -m benchmark -s tests/benchmarks/test_cli_speed.py

Each round starts the three commands in fresh interpreters, one after the other (A, B, C, A, B, C …),
so the machine's noise falls on all three alike; the table gives min / median / max wall time and
each command's median as a fraction of `python -c 'import torch'`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 7
COMMANDS = {
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "starch --help": [sys.executable, "-m", "search.cli", "--help"],
    "starch describe r3d_18": [sys.executable, "-m", "search.cli", "describe", "r3d_18"],
}


def wall(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


@pytest.mark.benchmark
def test_light_commands_against_import_torch():
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, argv in COMMANDS.items():  # warm the file cache once, untimed
        wall(argv)
    for _ in range(ROUNDS):
        for name, argv in COMMANDS.items():
            times[name].append(wall(argv))
    torch_median = statistics.median(times["python -c 'import torch'"])
    print(f"\n{ROUNDS} interleaved rounds")
    print("| command | min (s) | median (s) | max (s) | median ÷ import torch |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| `{name}` | {min(ts):.2f} | {med:.2f} | {max(ts):.2f} | {med / torch_median:.2f} |")
    for name in ("starch --help", "starch describe r3d_18"):
        assert statistics.median(times[name]) < torch_median  # they never import torch
