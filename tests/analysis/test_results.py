"""analysis.results on real Ray Tune run folders (tests/analysis/conftest.py), and on broken copies."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.results import load, load_epochs, read_run


def trial_dir(run: Path, family: str, **arch) -> Path:
    """The folder of the trial whose params.json arch has this name (and these fields)."""
    for folder in sorted(run.iterdir()):
        if not (folder / "params.json").exists():
            continue
        a = json.loads((folder / "params.json").read_text())["arch"]
        if a["name"] == family and all(a[k] == v for k, v in arch.items()):
            return folder
    raise AssertionError(f"no {family} {arch} trial in {run}")


def copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name, ignore=shutil.ignore_patterns("checkpoint_*")))


def test_one_row_per_trial_with_every_axis_metric_and_cost(runs):
    df = load([runs["ucf"], runs["hmdb"]])
    assert len(df) == 6 + 6
    assert list(df["dataset"].unique()) == ["ucf101", "synth-B"]  # format, then starch_experiment.json's name
    for column in (
        "convs",
        "conv1",
        "conv5",
        "blocks",
        "blocks2",
        "block",
        "width",
        "frames",
        "sampling_rate",
        "crop",
        "num_classes",
        "temporal_stride",
        "stem_kernel",
        "stem_stride",
        "stem_pool",
        "stem_mid",
        "family",
        "params",
        "gflops",
        "final_clip@1",
        "best_video@1",
        "final_video@5",
        "epochs",
        "status",
        "reason",
        "bad_videos",
        "short_videos_dropped",
        "wall_time_s",
        "gpu_hours",
        "label",
    ):
        assert column in df, column
    mc3 = df[(df["dataset"] == "ucf101") & (df["family"] == "MC3") & (df["status"] == "completed")].iloc[0]
    records = [json.loads(l) for l in (trial_dir(runs["ucf"], "MC3", crop=32) / "result.json").read_text().splitlines()]
    assert mc3["params"] == records[-1]["params"] and mc3["gflops"] == records[-1]["gflops"]
    assert mc3["final_video@1"] == records[-1]["video@1"]
    assert mc3["best_clip@1"] == max(r["clip@1"] for r in records)
    assert mc3["convs"] == "3d,3d,2d,2d,2d" and mc3["conv3"] == "2d" and mc3["num_classes"] == 4
    assert mc3["epochs"] == 2 and mc3["wall_time_s"] == records[-1]["time_total_s"]


def test_status_completed_stopped_early_and_errored_with_reason(runs):
    run = read_run(runs["ucf"])
    t = run.trials.set_index(["family", "crop", "sampling_rate"])
    assert t.loc[("f-R2D", 32, 2), "status"] == "stopped early"
    assert t.loc[("f-R2D", 32, 2), "epochs"] == 1
    assert t.loc[("R3D-18", 32, 1), "status"] == "completed"
    errored = t.loc[("MC3", 8, 2)]
    assert errored["status"] == "errored" and "crop = 8 is too small" in errored["reason"]
    assert math.isnan(errored["params"]) and errored["epochs"] == 0
    diverged = t.loc[("R(2+1)D", 32, 2)]
    assert diverged["status"] == "diverged" and diverged["reason"].startswith("loss became")
    assert diverged["params"] > 0 and math.isnan(diverged["final_video@1"])
    assert any("experiment_state" in n for n in run.notes)  # says where the status came from


def test_gpu_hours_only_when_the_run_records_gpus(runs):
    df = load([runs["ucf"], runs["hmdb"]])
    # ucf has no starch_experiment.json: each trial's records say which GPU share it held (0 on this
    # CPU), and a trial that never reported has none
    ucf = df[df["run"] == "ucf"]
    reported = ucf["epochs"] > 0
    assert (ucf.loc[reported, "gpu_hours"] == 0).all() and ucf.loc[~reported, "gpu_hours"].isna().all()
    hmdb = df[df["run"] == "hmdb"]
    assert (hmdb["gpu_hours"] - hmdb["wall_time_s"] * 0.5 / 3600).abs().max() < 1e-12
    assert any("GPU-hours are not shown" in n for n in df.attrs["notes"])


def test_repeats_keep_one_row_per_seed(runs):
    df = load(runs["hmdb"])
    assert sorted(df["seed"].tolist()) == [0, 0, 0, 1, 1, 1]
    assert df.groupby("arch_key").size().tolist() == [2, 2, 2]


def test_labels_name_the_axis_that_tells_networks_apart(runs):
    df = load([runs["ucf"], runs["hmdb"]])
    assert {"R3D-18 s=1", "R3D-18 s=2", "MC3 crop=8", "MC3 crop=32", "f-R2D", "R(2+1)D"} == set(df["label"])


def test_load_epochs_one_row_per_trial_and_epoch(runs):
    ep = load_epochs([runs["ucf"], runs["hmdb"]])
    assert len(ep) == 2 + 2 + 2 + 1 + 1 + 6 * 2  # the errored trial has none, f-R2D stopped and R(2+1)D
    # diverged after 1
    row = ep.iloc[0]
    assert row["train_error"] == pytest.approx(1 - row["train_acc"])
    assert row["test_error"] == pytest.approx(1 - row["clip@1"])
    assert set(ep["label"]) <= set(load([runs["ucf"], runs["hmdb"]])["label"])


def test_starch_json_files_are_used_when_present(runs, tmp_path):
    run = copy_run(runs["ucf"], tmp_path)
    df = load(run)
    stopped = df.loc[df["family"] == "f-R2D", "trial_id"].iloc[0]
    completed = df.loc[(df["family"] == "MC3") & (df["crop"] == 32), "trial_id"].iloc[0]
    (run / "starch_trials.json").write_text(
        json.dumps(
            [
                {"trial_id": stopped, "status": "TERMINATED", "error": None, "stopped_early": True},
                {"trial_id": completed, "status": "ERROR", "error": "worker node died", "stopped_early": False},
            ]
        )
    )
    (run / "starch_infeasible.json").write_text(
        json.dumps(
            [{"arch": {**json.loads(df["arch_key"].iloc[0]), "width": 900}, "reason": "params 1.2G > budget 33.2M"}]
        )
    )
    (run / "starch_experiment.json").write_text(
        json.dumps({"name": "conv_mixture", "search": {"metric": "clip@1"}, "dataset": "UCF101"})
    )
    df = load(run)
    assert set(df["run"]) == {"conv_mixture"} and set(df["dataset"]) == {"UCF101"}
    status = df.set_index("trial_id")["status"]
    assert status[stopped] == "stopped early"
    assert status[completed] == "errored"  # the scheduler's word beats the last record
    assert df.set_index("trial_id").loc[completed, "reason"] == "worker node died"
    infeasible = df[df["status"] == "infeasible"].iloc[0]
    assert infeasible["width"] == 900 and infeasible["reason"].startswith("params 1.2G")
    # trials missing from starch_trials.json fall back to Ray's experiment state, not to guessing
    assert (df["status"] == "errored").sum() == 2 and (df["status"] == "diverged").sum() == 1
    assert not any("inferred from files" in n for n in df.attrs["notes"])


def test_the_search_layers_trial_configs_and_folder_names(runs, tmp_path):
    """`starch search` writes {"candidate": {"arch", "axes", "repeat"}, …} and folders `<id>_<label>`."""
    run = copy_run(runs["hmdb"], tmp_path)
    folder, other = trial_dir(run, "MC3"), trial_dir(run, "R3D-18")
    params = json.loads((folder / "params.json").read_text())
    tid = json.loads((folder / "result.json").read_text().splitlines()[0])["trial_id"]
    arch = params.pop("arch")
    params["candidate"] = {"arch": {**arch, "width": 6}, "axes": {"network": "mc3"}, "repeat": 1}
    (folder / "params.json").write_text(json.dumps(params))
    (folder / "result.json").unlink()  # it never reported: the arch comes from the candidate
    folder.rename(run / f"{tid}_MC3")
    (run / "starch_trials.json").write_text(
        json.dumps([{"trial_id": tid, "status": "ERROR", "error": "RuntimeError: CUDA error", "stopped_early": False}])
    )
    experiment = json.loads((run / "starch_experiment.json").read_text())
    experiment["resources"] = {"gpus_per_trial": 0.5, "workers_per_trial": 2}
    (run / "starch_experiment.json").write_text(json.dumps(experiment))
    df = load(run)
    row = df.set_index("trial_id").loc[tid]
    assert row["trial_dir"] == f"{tid}_MC3" and row["family"] == "MC3" and row["width"] == 6
    assert row["status"] == "errored" and row["reason"] == "RuntimeError: CUDA error"
    assert row["repeat"] == 1 and row["seed"] == params["recipe"]["seed"] + 1  # an older candidate: no seed
    assert math.isnan(row["params"]) and row["depth"] == 2 + 2 * sum(arch["blocks"])
    done = df[df["status"] == "completed"]
    assert (done["gpu_hours"] - done["wall_time_s"] * 1.0 / 3600).abs().max() < 1e-12  # 0.5 GPU × 2 workers

    # today's candidate carries the seed and costs resolved on the driver; the records, the trained ones
    params["candidate"].update(seed=41, params=123_456, gflops=0.5)
    (run / f"{tid}_MC3" / "params.json").write_text(json.dumps(params))
    row = load(run).set_index("trial_id").loc[tid]
    assert (row["seed"], row["params"], row["gflops"]) == (41, 123_456, 0.5)
    records = [json.loads(line) for line in (other / "result.json").read_text().splitlines()]
    (other / "result.json").write_text("\n".join(json.dumps({**r, "seed": 99}) for r in records))
    assert load(run).set_index("trial_dir").loc[other.name, "seed"] == 99


def test_status_inferred_from_files_without_any_state(runs, tmp_path):
    run = copy_run(runs["ucf"], tmp_path)
    for state in run.glob("experiment_state-*.json"):
        state.unlink()
    # an attempt that failed and was retried to the end leaves its error.txt: the records say completed
    (trial_dir(run, "R3D-18", sampling_rate=1) / "error.txt").write_text("RuntimeError: node died\n")
    df = load(run)
    assert df.set_index("family").loc["f-R2D", "status"] == "stopped early"
    assert (df["status"] == "errored").sum() == 1
    assert df.set_index(["family", "sampling_rate"]).loc[("R3D-18", 1), "status"] == "completed"
    assert any("inferred from files" in n and "error.txt = errored" in n for n in df.attrs["notes"])


# ------------------------------------------------------------------------------------------ bad input


def test_not_a_run_folder_is_a_clear_error(runs, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a run folder"):
        load(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a Ray Tune run folder"):
        load(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"holds run folders \['hmdb', 'ucf'\]: pass those"):
        load(runs["ucf"].parent)


def test_empty_run_loads_with_a_note(tmp_path):
    run = tmp_path / "fresh"
    run.mkdir()
    (run / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": []}))
    df = load(run)
    assert df.empty and any("no trial folder yet" in n for n in df.attrs["notes"])


def test_missing_result_and_truncated_line_are_skipped_not_fatal(runs, tmp_path):
    run = copy_run(runs["hmdb"], tmp_path)
    folders = sorted(p for p in run.iterdir() if (p / "result.json").exists())
    (folders[0] / "result.json").unlink()
    text = (folders[1] / "result.json").read_text()
    (folders[1] / "result.json").write_text(text[: len(text) - 200])  # the last line cut mid-write
    (folders[2] / "params.json").write_text("{not json")
    df = load(run)
    assert len(df) == 6
    row = df.set_index("trial_dir")
    assert row.loc[folders[0].name, "status"] == "pending" and row.loc[folders[0].name, "epochs"] == 0
    assert row.loc[folders[1].name, "epochs"] == 1  # epoch 1 survived
    assert row.loc[folders[2].name, "family"] is not None  # arch from the records
    skipped = "\n".join(df.attrs["skipped"])
    assert "no result.json" in skipped and "line 2: not valid JSON" in skipped and "params.json" in skipped


def test_an_epoch_reported_twice_keeps_the_last(runs, tmp_path):
    run = copy_run(runs["hmdb"], tmp_path)
    folder = next(p for p in sorted(run.iterdir()) if (p / "result.json").exists())
    lines = (folder / "result.json").read_text().splitlines()
    again = {**json.loads(lines[1]), "video@1": 0.99}
    (folder / "result.json").write_text("\n".join(lines + [json.dumps(again)]) + "\n")
    df = load(run).set_index("trial_dir")
    assert df.loc[folder.name, "final_video@1"] == 0.99
    assert any("reported twice" in s for s in df.attrs["skipped"])
    assert len(load_epochs(run)) == 12


def test_same_format_different_videos_get_distinct_labels(runs, tmp_path):
    df = load([runs["ucf"], runs["ucf"]])  # the same videos twice: one label
    assert set(df["dataset"]) == {"ucf101"}
    hmdb = copy_run(runs["hmdb"], tmp_path)
    (hmdb / "starch_experiment.json").unlink()  # now both runs say "ucf101" (the layout) but differ in root
    df = load([runs["ucf"], hmdb])
    assert list(pd.unique(df["dataset"])) == ["ucf101 (ucf)", "ucf101 (hmdb)"]
    df = load([runs["ucf"], runs["hmdb"]], datasets=["A", "B"])
    assert list(pd.unique(df["dataset"])) == ["A", "B"]
    with pytest.raises(ValueError, match="one per run"):
        load([runs["ucf"], runs["hmdb"]], datasets=["A"])


def test_a_search_run_names_the_dataset_by_its_own_label(tmp_path):
    from analysis.results import dataset_name

    (tmp_path / "starch_dataset.json").write_text(
        json.dumps({"name": "starch-synthetic-motion", "label": "synthetic-motion"})
    )
    experiment = {"name": "demo", "data": {"format": "ucf101", "root": str(tmp_path)}}
    assert dataset_name(experiment, {"format": "ucf101"}) == "synthetic-motion"
    assert dataset_name(None, {"format": "ucf101", "root": str(tmp_path)}) == "ucf101"  # no search run
    gone = {"name": "demo", "data": {"format": "ucf101", "root": str(tmp_path / "elsewhere")}}
    assert dataset_name(gone, {"format": "ucf101"}) == "ucf101"  # data not reachable from here
