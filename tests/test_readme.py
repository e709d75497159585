"""The README tells the truth: its CLI reference is what `--help` prints, its commands are CI's."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def help_blocks():
    for block in re.findall(r"```text\n(\$ starch[^\n]*--help)\n(.*?)```", README, flags=re.S):
        yield block[0][2:].split()[1:-1], block[1].rstrip()


def test_cli_reference_covers_every_command():
    documented = {" ".join(argv) for argv, _ in help_blocks()}
    assert {
        "",
        "demo",
        "describe",
        "search",
        "promote",
        "resume",
        "status",
        "train",
        "report",
        "data check",
        "data synth",
    } <= documented


@pytest.mark.parametrize("argv, shown", list(help_blocks()), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_cli_reference_matches_help(argv, shown):
    proc = subprocess.run(
        [sys.executable, "-m", "search.cli", *argv, "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
    )
    printed = proc.stdout.rstrip().replace("usage: cli.py", "usage: starch")
    assert printed == shown, f"README's `starch {' '.join(argv)} --help` is stale"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"TEST_COMMAND='(.*)'", ci).group(1)
    blocks = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)
    assert blocks[1] == command  # the second of the two commands
    assert "starch demo" in blocks[0]


def test_every_test_the_failures_table_names_exists():
    section = README.split("#### What survives what", 1)[1].split("\n## ", 1)[0]
    files = {"F": "tests/search/test_failures.py", "P": "tests/search/test_preflight.py"}
    named = re.findall(r"`((?:[FP]|tests/[\w/]+\.py))::(test_\w+)`", section)
    assert len(named) >= 15
    for where, test in named:
        source = (ROOT / files.get(where, where)).read_text()
        assert f"def {test}(" in source, f"README names {where}::{test}, which does not exist"
