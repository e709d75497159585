"""A shortened `starch demo` end to end: synthetic videos, a real search with ASHA, the report."""

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


def test_the_demo_names_the_trials_a_budget_stop_left_out():
    import pandas as pd

    from search.config import load_experiment
    from search.demo import never_evaluated

    exp = load_experiment("demo", overrides={"data.root": "/nowhere"})
    networks, seeds = exp.to_space().size, exp.search.repeats
    trials = pd.DataFrame(
        {"family": ["f-R2D", "MC3", "R3D k/2"], "repeat": [0, 0, 2], "final_video@1": [0.1, float("nan"), 0.9]}
    )  # MC3 seed 0 started, never evaluated
    missing = never_evaluated(exp, trials)
    assert len(missing) == networks * seeds - 2
    assert "MC3 seed 0" in missing and "f-R2D seed 0" not in missing and "R3D k/2 seed 2" not in missing
