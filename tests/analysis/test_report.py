"""The report from real runs (two datasets, an errored trial, a stopped trial, repeats), its CLI, and
the rule that analysis runs without torch or Ray."""

from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from analysis import report_cli
from analysis.describe import describe_command
from analysis.report import write_report
from analysis.results import load
from spaces import describe_cli, named
from spaces.arch import ArchSpec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory) -> Path:
    return write_report([runs["ucf"], runs["hmdb"]], tmp_path_factory.mktemp("report") / "out")


def test_report_folder(report):
    out = report.parent
    assert report.name == "report.md"
    for name in ("accuracy_vs_flops", "accuracy_vs_sampling_rate", "training_curves"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "figures" / f"{name}.svg").exists()
    for name in ("ranking", "sweep_ucf101", "sweep_synth_b", "consistency", "fidelity"):
        for ext in ("md", "csv", "tex"):
            assert (out / "tables" / f"{name}.{ext}").exists(), f"{name}.{ext}"
    assert (out / "tables" / "trials.csv").exists() and (out / "tables" / "epochs.csv").exists()


def test_report_text_counts_failures_and_names_sources(report, runs):
    text = report.read_text()
    for heading in (
        "## Best architecture",
        "## Trials",
        "### Errored, diverged and infeasible trials",
        "## Accuracy vs computation",
        "## Ranking",
        "## Sweep tables",
        "## Cross-dataset consistency",
        "## Training curves",
        "## Fidelity of early stopping",
        "## Search configuration",
        "## What was skipped or inferred",
    ):
        assert heading in text, heading
    assert "| run | dataset | trials | completed | stopped early | diverged | errored |" in text
    assert "| ucf | ucf101 | 6 | 3 | 1 | 1 | 1 |" in text
    assert "| hmdb | synth-B | 6 | 6 | 0 | 0 | 0 |" in text
    assert "trial config: arch: crop = 8 is too small" in text and "| diverged | loss became" in text
    assert "from `starch_experiment.json`" in text and '"gpus_per_trial": 0.5' in text
    assert "trial status taken from Ray's experiment_state" in text


def test_every_ranked_number_comes_from_the_runs(report, runs):
    import pandas as pd

    df = load([runs["ucf"], runs["hmdb"]])
    ranking = pd.read_csv(report.parent / "tables" / "ranking.csv")
    assert len(ranking) == df.groupby(["dataset", "arch_key", "recipe_key"], dropna=False).ngroups
    for _, row in ranking.iterrows():
        trials = df[(df["dataset"] == row["dataset"]) & (df["label"] == row["architecture"])]
        assert row["params (M)"] == pytest.approx(trials["params"].mean() / 1e6, nan_ok=True)
        assert row["GFLOPs"] == pytest.approx(trials["gflops"].mean(), nan_ok=True)
        assert row["video@1 (%)"] == pytest.approx(trials["final_video@1"].mean() * 100, nan_ok=True)
    text = report.read_text()
    best = df.loc[df["dataset"] == "ucf101", "final_video@1"].max() * 100
    assert f"video@1 {best:.1f} %" in text


def test_best_architecture_has_a_working_describe_line(report, runs):
    lines = re.findall(r"^starch describe .*$", report.read_text(), flags=re.M)
    assert lines
    parser = argparse.ArgumentParser()
    describe_cli.add_parser(parser.add_subparsers())
    df = load([runs["ucf"], runs["hmdb"]])
    trained = {
        json.dumps(ArchSpec.from_dict({**json.loads(k), "num_classes": 4}).replace(sampling_rate=1).to_dict())
        for k in df["arch_key"]
        if json.loads(k)["crop"] != 8
    }
    for line in lines:
        args = parser.parse_args(line.split()[1:])
        spec = describe_cli.spec_from_args(args).replace(sampling_rate=1)
        assert json.dumps(spec.to_dict()) in trained, line


@pytest.mark.parametrize(
    "name, overrides, expected",
    [
        (
            "mc3",
            dict(frames=4, temporal_stride="all", width=108, num_classes=101),
            "starch describe mc3 --width 108 --frames 4 --classes 101 --temporal-stride all",
        ),
        ("sr18", {}, "starch describe sr18"),
        ("d26", dict(width=50, crop=56, sampling_rate=4), "starch describe d26 --width 50 --crop 56"),
        ("mc3", dict(stem_kernel=3), None),  # no describe flag sets the stem kernel
    ],
)
def test_describe_command(name, overrides, expected):
    assert describe_command(named(name, **overrides).to_dict()) == expected


def test_html_is_self_contained(report):
    html = (report.parent / "report.html").read_text()
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 3
    assert base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "figures/" not in html and "<table>" in html


def test_cli_writes_the_report_and_reports_bad_folders(runs, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="starch")
    report_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "report",
            str(runs["ucf"]),
            "--out",
            str(tmp_path / "r"),
            "--metric",
            "clip@1",
            "--formats",
            "png,pdf",
            "--dataset",
            "UCF",
        ]
    )
    assert args.func(args) == 0
    assert "report written" in capsys.readouterr().out
    text = (tmp_path / "r" / "report.md").read_text()
    assert "Ranking metric: **clip@1**" in text and "| ucf | UCF |" in text
    assert (tmp_path / "r" / "figures" / "accuracy_vs_flops.pdf").exists()
    assert not (tmp_path / "r" / "figures" / "accuracy_vs_flops.svg").exists()
    with pytest.raises(ValueError, match="not a Ray Tune run folder"):
        args = parser.parse_args(["report", str(tmp_path / "r")])
        args.func(args)
    with pytest.raises(ValueError, match="figure format"):
        args = parser.parse_args(["report", str(runs["ucf"]), "--out", str(tmp_path / "x"), "--formats", "gif"])
        args.func(args)


def test_cli_help_has_examples():
    parser = argparse.ArgumentParser(prog="starch")
    report_cli.add_parser(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["report"]
    assert "starch report runs/conv_mixture runs/conv_mixture_hmdb --out report/" in sub.format_help()


def test_metric_defaults_to_the_experiments(runs, tmp_path):
    path = write_report([runs["hmdb"]], tmp_path / "r", metric=None)
    assert "Ranking metric: **video@1**" in path.read_text()  # starch_experiment.json says video@1


def test_nothing_to_report_is_a_clear_error(tmp_path):
    run = tmp_path / "fresh"
    run.mkdir()
    (run / "tuner.pkl").write_bytes(b"")
    with pytest.raises(ValueError, match="nothing to report: .*fresh.* no trial yet"):
        write_report([run], tmp_path / "r")


BLOCKER = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "ray"):
            raise ImportError(f"analysis must not import {name}")
sys.meta_path.insert(0, Blocker())
from analysis import load, load_epochs, write_report
df = load(sys.argv[1:3])
assert len(df) == 12, len(df)
assert len(load_epochs(sys.argv[1:3])) > 0
write_report(sys.argv[1:3], sys.argv[3])
import analysis.report_cli, analysis.figures, analysis.tables, analysis.describe
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "ray"))
assert not leaked, leaked
print("ok")
"""


def test_analysis_runs_without_torch_or_ray(runs, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, str(runs["ucf"]), str(runs["hmdb"]), str(tmp_path / "r")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"
    assert (tmp_path / "r" / "report.html").exists()


def test_the_report_ranks_by_the_metric_the_search_optimised():
    """starch_experiment.json keeps it under search.metric (read as experiment["metric"] before)."""
    from types import SimpleNamespace

    from analysis.report import resolve_metric

    runs = [SimpleNamespace(experiment={"name": "x", "search": {"metric": "clip@1", "mode": "max"}})]
    assert resolve_metric(runs, None) == "clip@1"
    assert resolve_metric(runs, "video@5") == "video@5"
    assert resolve_metric([SimpleNamespace(experiment=None)], None) == "video@1"


def test_report_shows_each_trials_predicted_memory(report, runs):
    from analysis.results import load

    df = load([runs["ucf"], runs["hmdb"]])
    trained = df[df["predicted_memory_gb"].notna()]
    assert len(trained) >= 10  # every trial that started (not the one whose spec could not be built)
    text = report.read_text()
    memory = text[text.index("### Memory") :].split("\n\n")[1]
    # a CPU run: no measured column (it would be "—" on every row), and no GPU-hours in Trials
    assert memory.splitlines()[0] == "| run | architecture | trials | predicted peak (GiB) |"
    assert "measured peak" not in memory
    for _, row in trained.iterrows():  # every trial is in the row of its architecture
        line = next(x for x in memory.splitlines() if f" {row['trial_id']}" in x)
        assert line.startswith(f"| {row['run']} | {row['label']} |") and f"| {row['predicted_memory_gb']:.3f} |" in line
    # one row per architecture whose seeds predict the same: fewer rows than trials
    groups = trained.groupby(["run", "label", trained["predicted_memory_gb"].round(3)]).ngroups
    assert len(memory.splitlines()) - 2 == groups < len(trained)


def test_a_cpu_run_has_no_gpu_hours_column():
    import pandas as pd

    from analysis.report import Document, _accounting

    trials = pd.DataFrame(
        {
            "run": ["r", "r"],
            "trial_id": ["a", "b"],
            "label": ["MC3", "MC3"],
            "status": ["completed", "completed"],
            "reason": [None, None],
            "wall_time_s": [60.0, 60.0],
            "gpu_hours": [float("nan")] * 2,
            "bad_videos": [0, 0],
            "short_videos_dropped": [0, 0],
            "missing_videos": [0, 0],
        }
    )
    run = SimpleNamespace(name="r", dataset="synthetic-motion", trials=trials)
    doc = Document("t")
    _accounting(doc, [run], trials)
    assert "| wall time (h) |\n" in doc.markdown() and "GPU-hours |" not in doc.markdown()
    doc = Document("t")
    _accounting(doc, [SimpleNamespace(name="r", dataset="d", trials=trials.assign(gpu_hours=0.5))], trials)
    assert "| GPU-hours |" in doc.markdown()


def test_memory_table_keeps_apart_what_differs_and_shows_what_was_measured():
    import pandas as pd

    from analysis.report import memory_table

    trials = pd.DataFrame(
        {
            "run": ["r"] * 4,
            "label": ["MC3", "MC3", "MC3", "R3D-18"],
            "trial_id": ["a", "b", "c", "d"],
            "predicted_memory_gb": [1.0, 1.0, 1.0, 2.0],
            "measured_memory_gb": [0.5, 0.5, 0.7, float("nan")],
        }
    )
    table = memory_table(trials)
    assert table.to_dict("records") == [
        {
            "run": "r",
            "architecture": "MC3",
            "trials": "a, b",
            "predicted peak (GiB)": "1.000",
            "measured peak (GiB)": "0.500",
        },
        {
            "run": "r",
            "architecture": "MC3",
            "trials": "c",
            "predicted peak (GiB)": "1.000",
            "measured peak (GiB)": "0.700",
        },
        {
            "run": "r",
            "architecture": "R3D-18",
            "trials": "d",
            "predicted peak (GiB)": "2.000",
            "measured peak (GiB)": "—",
        },
    ]
    assert "measured peak (GiB)" not in memory_table(trials.assign(measured_memory_gb=float("nan")))


def test_the_report_leads_with_the_figure_the_ranking_and_the_verdict(report):
    """What the reader came for first, diagnostics after (in report.md and in report.html alike)."""
    lead = ["Accuracy vs computation", "Ranking", "Best architecture"]
    results = ["Sweep tables", "Cross-dataset consistency", "Training curves", "Fidelity of early stopping"]
    diagnostics = ["Trials", "Memory", "Efficiency", "Search configuration", "What was skipped or inferred"]
    text = report.read_text()
    html = (report.parent / "report.html").read_text()
    for document, before, after in ((text, "\n#{2,3} ", "\n"), (html, "<h[23]>", "</h[23]>")):
        places = [re.search(before + re.escape(h) + after, document) for h in lead + results + diagnostics]
        assert all(places), [h for h, p in zip(lead + results + diagnostics, places) if not p]
        starts = [p.start() for p in places]
        assert starts == sorted(starts)
    # nothing but the title and the one-line summary of the runs before the figure
    head = text[: text.index("## Accuracy vs computation")]
    assert head.count("\n#") == 0 and len(head.strip().splitlines()) == 3


def test_a_report_names_the_planned_trials_that_never_ran(runs, tmp_path):
    import shutil

    run = tmp_path / "hmdb"
    shutil.copytree(runs["hmdb"], run)
    planned = [{"name": n, "repeat": r, "seed": r} for n in ("R3D-18", "MC3", "f-R2D", "R(2+1)D") for r in (0, 1)]
    scaling = {"sentence": "measured 41 training clips/s per trial; 8 epochs instead of 12 to fit 15.0 min"}
    (run / "starch_demo.json").write_text(json.dumps({"scaling": scaling, "planned": planned, "search_s": 90}))
    text = write_report([run], tmp_path / "report").read_text()
    assert "**2 of 8 planned trials never reported video@1**" in text
    assert "- R(2+1)D seed 0\n- R(2+1)D seed 1\n" in text and "- MC3 seed" not in text
    assert scaling["sentence"] in text and "The search took 1.5 min." in text
    html = (tmp_path / "report" / "report.html").read_text()
    assert "<li>R(2+1)D seed 1</li>" in html
