"""The reading commands stay fast: `starch --help`, `describe`, `status`, `report` and `data check`
import neither torch nor Ray (torch alone takes ~2 s to import; Ray about as long).

Each command runs in a fresh interpreter, as a user's shell would start it, which then prints the
heavy modules it holds: a top-level `import torch` anywhere on the path of a command fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "ray", "optuna", "tensorboardX")

PROBE = """
import json, sys
from search.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help exits through argparse
    code = exc.code
print("\\nLOADED " + json.dumps({"code": code, "heavy": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


def loaded(*argv: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120)
    line = [l for l in proc.stdout.splitlines() if l.startswith("LOADED ")]
    assert line, f"starch {' '.join(argv)} did not finish: {proc.stderr[-2000:]}"
    return json.loads(line[-1].removeprefix("LOADED "))


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["describe", "r3d_18"], ["describe", "mc3", "--budget", "33.0M"], ["search", "--help"]],
    ids=" ".join,
)
def test_light_commands_import_neither_torch_nor_ray(argv):
    out = loaded(*argv)
    assert out["code"] in (0, None)
    assert out["heavy"] == []


def test_data_check_imports_neither_torch_nor_ray(synth_root):
    out = loaded("data", "check", "ucf101", str(synth_root))
    assert out["code"] == 0
    assert out["heavy"] == []


def test_status_and_report_import_neither_torch_nor_ray(runs, tmp_path):
    status = loaded("status", str(runs["hmdb"]))
    report = loaded("report", str(runs["hmdb"]), "--out", str(tmp_path / "report"))
    assert (status["code"], report["code"]) == (0, 0)
    assert (tmp_path / "report" / "report.md").is_file()
    assert status["heavy"] == [] and report["heavy"] == []
