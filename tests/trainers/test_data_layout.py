"""The data side (trainers.data) imports without the training side: a reader finds the decoder without
the loop, and `starch data` never pays for the trainer's imports."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DATA_MODULES = ["synth", "datasets", "loader", "video", "decode_process", "cache", "clips", "transforms", "data_cli"]
TRAINING = ["trainers.loop", "trainers.trial", "trainers.ray_adapter", "trainers.recipe", "trainers.checkpoint"]


@pytest.mark.parametrize("name", DATA_MODULES)
def test_data_module_imports_without_training_side(name):
    code = (
        f"import sys, trainers.data.{name}\n"
        f"bad = [m for m in {TRAINING!r} + ['ray'] if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    # this checkout first on the child's path, so it imports the copies under test
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"trainers.data.{name} imported {out.stdout.strip()}"
