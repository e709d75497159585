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
