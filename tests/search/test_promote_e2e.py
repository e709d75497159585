"""The papers' workflow end to end on the synthetic benchmark: a tiny proxy search, its front promoted
to a longer schedule on a second dataset, and the report that says how far the proxy ranked right."""

import json
import textwrap

import pytest

from analysis import load
from search.cli import main


def tiny_proxy(tmp_path, root, *, networks, epochs, repeats):
    """A proxy search: k = 4 networks of one block per stage, 8 frames of 32 px, a few epochs."""
    path = tmp_path / "proxy.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: proxy
        space: {{network: [{", ".join(networks)}], frames: 8, sampling_rate: 2, crop: 32, width: 4, blocks: [1, 1, 1, 1]}}
        data: {{format: ucf101, root: {root}, resize: null, num_workers: 0, batch_size: 8, eval_clips: 2}}
        schedule: {{epochs: {epochs}, lr: 0.05}}
        search: {{repeats: {repeats}}}
        resources: {{cpus_per_trial: 1}}
        cluster: {{storage: {tmp_path / "runs"}}}
        """)
    )
    return path


def _promote_and_check(
    tmp_path, synth_root, second_root, capsys, monkeypatch, *, networks, proxy_epochs, repeats, flags, epochs, classes
):
    proxy = tiny_proxy(tmp_path, synth_root, networks=networks, epochs=proxy_epochs, repeats=repeats)
    assert main(["search", str(proxy), "--no-report"]) == 0
    run = tmp_path / "runs" / "proxy"
    capsys.readouterr()
    monkeypatch.delenv("STARCH_NO_ESTIMATE")  # the promoted run's estimate comes from the proxy's records
    argv = ["promote", str(run), *flags, "--data", f"ucf101:{second_root}", "--set", f"schedule.epochs={epochs}"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    if classes != set(load([proxy.parent / "runs" / "proxy"])["num_classes"]):
        assert f"note: the new dataset has {min(classes)} classes, the proxy's had" in out
    assert "throughput: the proxy run's records" in out and out.index("cost estimate") < out.index("finished:")
    promoted = tmp_path / "runs" / "proxy-promoted"
    record = json.loads((promoted / "starch_experiment.json").read_text())["promoted_from"]
    assert record["run"] == str(run) and record["selection"] == flags[0].lstrip("-") + (
        f" {flags[1]}" if len(flags) > 1 else ""
    )
    before, after = load([run]), load([promoted])
    assert set(after["arch_key"]) <= set(before["arch_key"])  # the very networks the proxy trained
    assert len(after) == len(record["networks"]) * repeats and set(after["status"]) == {"completed"}
    assert set(after["epochs"]) == {epochs} and set(after["num_classes"]) == classes
    assert {json.loads(p.read_text())["data"]["root"] for p in promoted.glob("*/params.json")} == {str(second_root)}
    report = (promoted / "report" / "report.md").read_text()
    assert "## Promotion: did the proxy's ranking hold?" in report and "| networks | Kendall τ | p (τ) |" in report
    assert "| architecture | GFLOPs | proxy video@1 (%) | proxy rank | promoted video@1 (%) |" in report
    assert (promoted / "report" / "figures" / "proxy_vs_promoted_proxy_promoted.png").stat().st_size > 0
    assert (
        "### Cost: predicted and actual" in report
        and "| network | GFLOPs/clip | trials | predicted s/trial |" in report
    )
    return run, promoted


def test_a_proxy_front_promoted_to_a_longer_schedule_and_another_dataset(ray_cluster, tmp_path, capsys, monkeypatch):
    from trainers.data.synth import write_synthetic_dataset

    small = dict(videos_per_class=6, frames=24, size=(32, 44))  # 4 classes: 24 videos; 8 classes: 48
    write_synthetic_dataset(tmp_path / "a", classes=4, seed=0, **small)
    write_synthetic_dataset(tmp_path / "b", classes=8, seed=1, **small)
    _promote_and_check(
        tmp_path,
        tmp_path / "a",
        tmp_path / "b",
        capsys,
        monkeypatch,
        networks=["f-r2d", "mc3", "r3d_18"],
        proxy_epochs=1,
        repeats=1,
        flags=["--front"],
        epochs=2,
        classes={8},
    )


@pytest.mark.slow
def test_the_top_networks_with_seeds_promoted_resumed_and_reported_together(
    ray_cluster, tmp_path, synth_root, tiny_synthetic, capsys, monkeypatch
):
    run, promoted = _promote_and_check(
        tmp_path,
        synth_root,
        tiny_synthetic(1),
        capsys,
        monkeypatch,
        networks=["f-r2d", "mc3", "rmc3", "r3d_18", "r2plus1d_18"],
        proxy_epochs=2,
        repeats=2,
        flags=["--top", "4"],
        epochs=4,
        classes={4},
    )
    assert main(["resume", str(promoted), "--no-report"]) == 0  # a finished promoted run resumes as any run
    assert len(load([promoted])) == 8
    assert main(["report", str(run), str(promoted), "--out", str(tmp_path / "both")]) == 0
    both = (tmp_path / "both" / "report.md").read_text()
    assert "## Promotion: did the proxy's ranking hold? (proxy-promoted)" in both
