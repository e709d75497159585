"""The cost estimate: the arithmetic (search.estimate), and where it is printed and written."""

import json

import pytest

from search.cli import main
from search.demo_plan import REPORT_S, Sizes
from search.estimate import Estimate, Network, speeds_from_achieved, speeds_from_tflops, trial_gflops

SIZES = Sizes(train_videos=100, test_videos=20, eval_clips=4)


def test_the_work_is_macs_times_clips_times_epochs_three_times_for_training():
    # 3 × 0.5 GFLOPs × 100 clips × 4 epochs + 0.5 × 20 videos × (1 + 4) clips × 2 evaluations (epochs 2, 4)
    assert trial_gflops(0.5, SIZES, epochs=4, eval_every=2) == pytest.approx(600 + 100)
    assert trial_gflops(0.5, SIZES, epochs=5, eval_every=2) == pytest.approx(750 + 150)  # the last epoch evaluates too


def test_an_assumed_throughput_predicts_time_and_device_hours():
    nets = [Network("a", "A", gflops=0.5, trials=2), Network("b", "B", gflops=1.0, trials=1)]
    speeds = speeds_from_tflops(nets, tflops=3)  # 3e12 FLOP/s ÷ (2 × 3 × 0.5e9) = 1,000 training clips/s
    assert speeds["a"]["train_clips_per_s"] == pytest.approx(1000) and speeds["a"]["eval_clips_per_s"] == pytest.approx(
        3000
    )
    est = Estimate(
        nets, SIZES, epochs=4, eval_every=2, source="assumed", speeds=speeds, concurrency=1, devices_per_trial=2
    )
    # one trial of A: 4 × 100 / 1000 + 2 × 20 × 5 / 3000 = 0.4667 s, of B twice that
    seconds = est.trial_seconds()
    assert seconds["a"] == pytest.approx(0.4 + 200 / 3000) and seconds["b"] == pytest.approx(2 * seconds["a"])
    assert est.wall_seconds() == pytest.approx(4 * seconds["a"] + REPORT_S)  # one slot: the trials one after another
    assert est.device_hours() == pytest.approx(4 * seconds["a"] * 2 / 3600)
    two = Estimate(nets, SIZES, epochs=4, eval_every=2, source="assumed", speeds=speeds, concurrency=2)
    assert two.wall_seconds() == pytest.approx(2 * seconds["a"] + REPORT_S)  # B on one slot, A, A on the other
    assert est.total_gflops() == pytest.approx(2 * trial_gflops(0.5, SIZES, 4, 2) + trial_gflops(1.0, SIZES, 4, 2))
    text = "\n".join(est.lines())
    assert (
        "cost estimate (3 trial(s) of 2 network(s), 4 epoch(s) each):" in text
        and "GPU-hours (2 GPU(s) per trial)" in text
    )


def test_what_cannot_be_predicted_is_said():
    nets = [Network("a", "A", gflops=0.5, trials=1), Network("b", "B", gflops=1.0, trials=1)]
    no_data = Estimate(nets, None, epochs=4, eval_every=2, source="-")
    assert no_data.total_gflops() is None
    assert (
        "work: unknown without the dataset (--data FORMAT:ROOT), which the clips per epoch are counted from; 0.5 … 1 GFLOPs"
        in "\n".join(no_data.lines())
    )
    # the proxy recorded a speed for A only (achieved 6 GFLOP/s of training: 6 / (6 × 0.5) = 2 clips/s)
    speeds = speeds_from_achieved(nets, {"a": 6.0}, {"a": 5.0})
    assert list(speeds) == ["a"] and speeds["a"]["train_clips_per_s"] == pytest.approx(2.0)
    assert speeds["a"]["setup_s"] == 5.0  # the proxy's time outside its training epochs, once per trial
    partial = Estimate(nets, SIZES, epochs=4, eval_every=2, source="proxy", speeds=speeds)
    assert partial.wall_seconds() is None and "time: not predicted (no throughput for B)" in "\n".join(partial.lines())
    # set-ups from a proxy (5 s and 65 s) differ by more than a cold read: the excess counts once, not per video
    both = speeds_from_achieved(nets, {"a": 6.0, "b": 12.0}, {"a": 5.0, "b": 65.0})
    est = Estimate(nets, SIZES, epochs=4, eval_every=2, source="proxy", speeds=both, concurrency=2)
    one = est.trial_seconds()  # each with its own set-up; the wall takes the median set-up plus the excess once
    median = (5.0 + 65.0) / 2
    assert est.wall_seconds() == pytest.approx(
        max(one["a"] - 5 + median, one["b"] - 65 + median) + (65.0 - median) + REPORT_S
    )
    with pytest.raises(ValueError, match="--assume-tflops must be > 0"):
        speeds_from_tflops(nets, 0)


def test_search_dry_run_prints_the_estimate(make_experiment, capsys):
    path = make_experiment(name="cost")
    assert main(["search", str(path), "--dry-run", "--assume-tflops", "0.002"]) == 0
    out = capsys.readouterr().out
    assert "cost estimate (3 trial(s) of 3 network(s), 2 epoch(s) each):" in out
    assert "throughput: assumed 0.002 TFLOP/s per trial (--assume-tflops)" in out and "CPU-hours" in out
    assert not (path.parent / "runs").exists()


def test_a_run_starts_with_the_measured_estimate_and_keeps_it(ray_cluster, make_experiment, capsys, monkeypatch):
    monkeypatch.delenv("STARCH_NO_ESTIMATE")
    path = make_experiment(name="estimated", body="search:\n  repeats: 1\n")
    path.write_text(
        path.read_text().replace("network: [r3d_18, f-r2d, mc3]", "network: [f-r2d]").replace("epochs: 2", "epochs: 1")
    )
    assert main(["search", str(path), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert out.index("cost estimate (1 trial(s) of 1 network(s), 1 epoch(s) each):") < out.index("finished: completed")
    assert "throughput: measured now in this process" in out
    saved = json.loads((path.parent / "runs" / "estimated" / "starch_estimate.json").read_text())
    assert saved["networks"][0]["label"] == "f-R2D" and saved["networks"][0]["train_clips_per_s"] > 0
    assert saved["wall_s"] > saved["networks"][0]["trial_s"] > 0


def test_on_a_cluster_the_networks_are_measured_in_ray_tasks(ray_cluster, make_experiment, capsys, monkeypatch):
    monkeypatch.delenv("STARCH_NO_ESTIMATE")
    path = make_experiment(name="estimated-remote")
    path.write_text(
        path.read_text().replace("network: [r3d_18, f-r2d, mc3]", "network: [f-r2d]").replace("epochs: 2", "epochs: 1")
    )
    assert main(["search", str(path), "--address", ray_cluster.address, "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "throughput: measured now on the cluster: 2 batches of each network in Ray tasks" in out
    assert "predicted:" in out and "(2 trial(s) at a time)" not in out  # one trial: one slot
