"""A shortened `starch demo` end to end: synthetic videos, a real search with ASHA, the report."""

import json

from search.cli import main


def test_quick_demo_runs_end_to_end(ray_cluster, tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "| rank | architecture |" in out and "R(2+1)D" in out and "f-R2D" in out
    report = tmp_path / "demo" / "report"
    assert (report / "report.md").is_file() and (report / "report.html").is_file()
    assert (report / "figures" / "accuracy_vs_flops.png").stat().st_size > 3_000
    assert main(["status", str(tmp_path / "demo" / "runs" / "demo")]) == 0
    assert "3 trial(s)" in capsys.readouterr().out
    plan = json.loads((tmp_path / "demo" / "runs" / "demo" / "starch_demo.json").read_text())
    scaling = plan["scaling"]  # measured on this machine before the search, and what it chose
    assert set(scaling["speeds"]) == {"f-R2D", "R3D-18", "R(2+1)D"} and scaling["preset_epochs"] == 3
    assert all(s["train_clips_per_s"] > 0 and s["eval_clips_per_s"] > 0 for s in scaling["speeds"].values())
    assert scaling["sentence"] in out and plan["search_s"] > 0
    assert [p["name"] for p in plan["planned"]] == ["f-R2D", "R3D-18", "R(2+1)D"]
    assert scaling["sentence"] in (report / "report.md").read_text()


def test_the_demo_names_the_trials_a_budget_stop_left_out():
    import pandas as pd

    from analysis.report import never_ran
    from search.config import load_experiment
    from search.demo import planned_trials

    exp = load_experiment("demo", overrides={"data.root": "/nowhere"})
    networks, seeds = exp.to_space().size, exp.search.repeats
    planned = planned_trials(exp)
    assert len(planned) == networks * seeds and {"name": "MC3", "repeat": 2, "seed": 2} in planned
    trials = pd.DataFrame(
        {"family": ["f-R2D", "MC3", "R3D k/2"], "seed": [0, 0, 2], "final_video@1": [0.1, float("nan"), 0.9]}
    )  # MC3 seed 0 started, never evaluated
    missing = never_ran(planned, trials, "video@1")
    assert len(missing) == networks * seeds - 2
    assert "MC3 seed 0" in missing and "f-R2D seed 0" not in missing and "R3D k/2 seed 2" not in missing


def test_the_demo_can_run_on_other_seeds(tmp_path):
    """`starch demo --seed 10` trains every network on seeds 10, 11, 12 (a second, independent run)."""
    import argparse

    from search.config import load_experiment
    from search.demo import add_parser, demo_overrides, planned_trials

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["demo", "--seed", "10"])
    exp = load_experiment("demo", overrides=demo_overrides(args, tmp_path / "data", tmp_path))
    assert {p["seed"] for p in planned_trials(exp)} == {10, 11, 12}
    default = parser.parse_args(["demo"])
    assert "schedule.seed" not in demo_overrides(default, tmp_path / "data", tmp_path)
    assert {p["seed"] for p in planned_trials(load_experiment("demo", overrides={"data.root": "/nowhere"}))} == {
        0,
        1,
        2,
    }
