import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from search.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_describe_prints_the_layer_table(capsys):
    code, out, _ = run(
        capsys,
        "describe",
        "mc3",
        "--budget",
        "33.0M",
        "--rule",
        "under",
        "--frames",
        "4",
        "--temporal-stride",
        "all",
        "--classes",
        "101",
    )
    assert code == 0
    assert "width k = 108" in out and "32.8M" in out
    assert re.search(r"conv3_x\s+2×28×28\s+\[1×3×3, 216; 1×3×3, 216\], stride 2×2×2\s+×2", out)
    assert re.search(r"conv2_x\s+4×56×56\s+\[3×3×3, 108; 3×3×3, 108\]\s+×2", out)


def test_describe_json(capsys):
    code, out, _ = run(capsys, "describe", "d26", "--budget", "33.2M", "--json")
    d = json.loads(out)
    assert code == 0
    assert {"name", "width", "params", "flops", "blocks", "convs"} <= d.keys()
    assert (d["name"], d["width"], d["blocks"]) == ("d26", 50, [2, 3, 4, 3])
    assert abs(d["params"] - 33.2e6) / 33.2e6 < 0.02  # one step of k moves D26 by ~1.3M


def test_describe_blocks_flag(capsys):
    code, out, _ = run(capsys, "describe", "sr18", "--blocks", "1,1,1,1", "--json")
    assert json.loads(out)["blocks"] == [1, 1, 1, 1]


def test_describe_list(capsys):
    code, out, _ = run(capsys, "describe", "--list")
    names = [line.split()[0] for line in out.splitlines()]
    assert code == 0 and {"r2plus1d_18", "mc5", "rmc2", "p3d_199", "d34", "f-r2d", "r2d"} <= set(names)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["describe", "mc6"], "unknown network 'mc6'"),
        (["describe", "sr18", "--budget", "12Q"], "--budget must be a number"),
        (["describe", "sr18", "--crop", "8"], "crop >= 16"),
        (["describe", "sr18", "--blocks", "2,x,2,2"], "--blocks must be 4"),
        (["describe", "sr18", "--budget", "1k", "--rule", "under"], "below the smallest"),
    ],
)
def test_bad_input_is_one_clear_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_script_is_installed():
    proc = subprocess.run(
        [sys.executable, "-m", "search.cli", "describe", "r2d", "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(proc.stdout)["convs"][0] == "fold"


def readme_examples():
    """Every ```console block of the README that runs `starch describe`, with its shown output."""
    text = README.read_text()
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        lines = block.splitlines()
        if lines and lines[0].startswith("$ starch describe"):
            yield shlex.split(lines[0][2:])[1:], "\n".join(lines[1:]).rstrip()


def test_readme_shows_real_describe_output(capsys):
    examples = list(readme_examples())
    assert len(examples) >= 3
    for argv, shown in examples:
        _, out, _ = run(capsys, *argv)
        assert out.rstrip() == shown, f"README output of `starch {' '.join(argv)}` is stale"
