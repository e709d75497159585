"""`starch promote`: choosing networks from a results table, the promoted experiment, and every
refusal before Ray starts (on a run folder written by hand: no training, no Ray)."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.results import arch_key
from search.cli import main
from search.config import load_experiment
from search.promote import choose, class_count_note, promoted_experiment
from spaces import named
from spaces.space import Space

SMALL = dict(width=4, frames=8, crop=32, sampling_rate=2, blocks=(1, 1, 1, 1), num_classes=4)
# network: (GFLOPs, video@1 of seed 0, of seed 1); GFLOPs made up so the front is f-R2D, MC3, R3D-18
PROXY = {
    "f-r2d": (0.003, 0.50, 0.40),
    "mc3": (0.006, 0.70, 0.80),
    "rmc3": (0.007, 0.60, 0.60),
    "r3d_18": (0.009, 0.90, 0.80),
}


def _arch(name):
    return named(name, **SMALL).to_dict()


def table(statuses=None) -> pd.DataFrame:
    """analysis.load's columns that choose() reads, for 4 networks × 2 seeds."""
    rows = []
    for i, (name, (gflops, *accs)) in enumerate(PROXY.items()):
        arch = _arch(name)
        for seed, acc in enumerate(accs):
            tid = f"abcde_{2 * i + seed:05d}"
            rows.append(
                {
                    "run": "proxy",
                    "dataset": "A",
                    "trial_id": tid,
                    "label": arch["name"],
                    "family": arch["name"],
                    "width": 4,
                    "params": 1e4,
                    "gflops": gflops,
                    "final_video@1": acc,
                    "final_clip@1": acc,
                    "final_video@5": math.nan,
                    "status": (statuses or {}).get(tid, "completed"),
                    "reason": None,
                    "recipe_key": "{}",
                    "arch_key": arch_key(arch),
                }
            )
    return pd.DataFrame(rows)


def test_front_top_and_ids_choose_networks_and_say_why():
    front = choose(table(), "video@1", front=True)
    assert [c.label for c in front] == ["f-R2D", "MC3", "R3D-18"]  # rMC3 costs more than MC3 and is worse
    assert all("Pareto front" in c.why for c in front)
    assert front[1].trials == ("abcde_00002", "abcde_00003") and front[1].mean == pytest.approx(0.75)
    top = choose(table(), "video@1", top=2)
    assert [c.label for c in top] == ["R3D-18", "MC3"] and top[0].why.startswith("rank 1 of 4 by mean video@1 over 2")
    listed = choose(table(), "video@1", ids=["abcde_00005", "abcde_00004", "abcde_00000"])
    assert [c.label for c in listed] == ["rMC3", "f-R2D"]  # two seeds of one network: one network
    assert listed[0].trials == ("abcde_00004", "abcde_00005") and "ranks 3 of 4" in listed[0].why
    # a stopped-early trial does not count in the ranking, but may be listed
    partial = table({"abcde_00006": "stopped early", "abcde_00007": "stopped early"})
    assert [c.label for c in choose(partial, "video@1", top=3)] == ["MC3", "rMC3", "f-R2D"]
    (late,) = choose(partial, "video@1", ids=["abcde_00007"])
    assert late.label == "R3D-18" and math.isnan(late.mean) and "no completed trial" in late.why


@pytest.mark.parametrize(
    "kwargs, trials, message",
    [
        (
            dict(top=5),
            None,
            "--top 5: proxy has 4 network(s) with a completed trial reporting video@1; valid: --top 1 … 4",
        ),
        (dict(top=0), None, "valid: --top 1 … 4"),
        (dict(ids=["zzz"]), None, "--trials: 'zzz' is not a trial of proxy; its trials: abcde_00000"),
        (dict(front=True, top=2), None, "exactly one of --front, --top K or --trials"),
        (dict(front=True), {f"abcde_{i:05d}": "running" for i in range(8)}, "proxy has no completed trial (8 running)"),
    ],
)
def test_bad_choices_are_one_clear_line(kwargs, trials, message):
    with pytest.raises(ValueError, match=None) as err:
        choose(table(trials), "video@1", run="proxy", **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_metric_never_recorded_and_an_empty_front_are_refused():
    with pytest.raises(
        ValueError, match=r"--metric video@5: no completed trial of proxy recorded it; valid: clip@1, video@1"
    ):
        choose(table(), "video@5", front=True, run="proxy")
    no_flops = table().assign(gflops=math.nan)
    with pytest.raises(ValueError, match="the Pareto front of video@1 vs GFLOPs of proxy is empty"):
        choose(no_flops, "video@1", front=True, run="proxy")


TINY = """
name: proxy
space: {network: [f-r2d, mc3, rmc3, r3d_18], frames: 8, sampling_rate: 2, crop: 32, width: 4, blocks: [1, 1, 1, 1], num_classes: 4}
data: {format: ucf101, root: DATA, resize: null, num_workers: 0, batch_size: 8, eval_clips: 2}
schedule: {epochs: 1, lr: 0.05}
search: {repeats: 2}
scheduler: {type: asha}
resources: {cpus_per_trial: 1}
cluster: {storage: STORAGE}
"""


def proxy_experiment(tmp_path, data="/nowhere"):
    path = tmp_path / "proxy.yaml"
    path.write_text(TINY.replace("DATA", str(data)).replace("STORAGE", str(tmp_path / "runs")))
    return load_experiment(path)


def test_the_promoted_experiment_trains_exactly_the_chosen_archspecs(tmp_path):
    proxy = proxy_experiment(tmp_path)
    choices = choose(table(), "video@1", front=True)
    exp = promoted_experiment(
        proxy,
        choices,
        run="/runs/proxy",
        selection="front",
        metric="video@1",
        overlay={"schedule": {"epochs": 3}, "search": {"repeats": 3}},
        overrides={"schedule.lr": 0.1, "name": "longer"},
    )
    space = Space.cached(exp.space, exp.width_rule)
    resolved = [space.to_arch(p).to_dict() for p in space.grid()]
    assert resolved == [c.arch | {"num_classes": 4} for c in choices]  # k, blocks, convs, frames, s, crop
    assert exp.search.algorithm == "grid" and exp.search.repeats == 3 and exp.scheduler.type == "fifo"
    assert (exp.schedule.epochs, exp.schedule.lr, exp.name) == (3, 0.1, "longer")
    assert exp.promoted_from.run == "/runs/proxy" and exp.promoted_from.networks[1].trials == [
        "abcde_00002",
        "abcde_00003",
    ]
    assert json.loads(exp.model_dump_json())["promoted_from"]["selection"] == "front"  # in starch_experiment.json
    assert class_count_note(proxy, exp.updated(space={**exp.space, "num_classes": [8]})).startswith(
        "note: the new dataset has 8 classes, the proxy's had 4"
    )


@pytest.mark.parametrize(
    "overlay, overrides, message",
    [
        (
            {"space": {"frames": 4}},
            None,
            "the overlay: a promoted run trains the chosen networks as the proxy resolved them",
        ),
        (None, {"space.crop": 64}, "--set space.crop: a promoted run trains the chosen networks"),
        (None, {"search.algorithm": "tpe"}, "search.algorithm = 'tpe': a promoted run trains a fixed list of networks"),
        (None, {"schedule.epochs": 0}, "promoted experiment proxy-promoted"),
    ],
)
def test_changing_the_networks_is_refused(tmp_path, overlay, overrides, message):
    with pytest.raises(ValueError) as err:
        promoted_experiment(
            proxy_experiment(tmp_path),
            choose(table(), "video@1", top=2),
            run="r",
            selection="top 2",
            metric="video@1",
            overlay=overlay,
            overrides=overrides,
        )
    assert message in str(err.value)


# ------------------------------------------------------------------------------------------ the CLI


def fake_run(tmp_path: Path, data: Path, statuses=None) -> Path:
    """A run folder as `starch search` leaves it (experiment, trials' params.json and result.json,
    starch_trials.json), with the accuracies of `table()`, written without training."""
    from search.constraints import Candidate
    from search.tuner import write_experiment
    from spaces import ArchSpec

    exp = proxy_experiment(tmp_path, data)
    run = tmp_path / "runs" / "proxy"
    write_experiment(exp, str(run))
    listed = []
    for _, row in table(statuses).iterrows():
        arch = ArchSpec.from_dict(json.loads(row["arch_key"]) | {"num_classes": 4})
        folder = run / f"{row['trial_id']}_{arch.name}"
        folder.mkdir(parents=True)
        candidate = Candidate({"network": arch.name}, arch).to_config()
        (folder / "params.json").write_text(json.dumps({"candidate": candidate, "data": {}, "recipe": {"epochs": 1}}))
        record = {"trial_id": row["trial_id"], "epoch": 1, "arch": arch.to_dict(), "arch_name": arch.name}
        record |= {"video@1": row["final_video@1"], "clip@1": row["final_clip@1"], "gflops": row["gflops"]}
        record["status"] = "completed" if row["status"] == "completed" else "running"
        (folder / "result.json").write_text(json.dumps(record) + "\n")
        status = "TERMINATED" if row["status"] == "completed" else "RUNNING"
        listed.append({"trial_id": row["trial_id"], "status": status, "run_status": record["status"]})
    (run / "starch_trials.json").write_text(json.dumps(listed))
    return run


def _fails(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("starch: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_every_bad_promotion_is_one_line_before_ray_and_writes_nothing(tmp_path, synth_root, capsys):
    import ray

    ray_was_up = ray.is_initialized()
    run = fake_run(tmp_path, synth_root)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    cases = {
        ("--top", "9"): "--top 9: ",
        ("--metric", "video@5", "--front"): "--metric video@5: no completed trial",
        ("--trials", "nope"): "--trials: 'nope' is not a trial",
        (
            "--front",
            "--set",
            "constraints.max_gflops=0.005",
        ): "2 of 3 chosen network(s) no longer fit the promoted run: MC3: gflops over its limit by",
        ("--top", "1", "--set", "resources.gpus_per_trial=1"): "resources: a trial needs 1 GPU(s)",
        ("--top", "1", "--data", f"ucf101:{tmp_path / 'missing'}"): "data.root",
        ("--top", "1", "--set", "space.frames=4"): "space cannot be changed",
        ("--top", "1", "--config", str(tmp_path / "nope.yaml")): "--config",
    }
    for flags, message in cases.items():
        for dry in ([], ["--dry-run"]):
            err = _fails(["promote", str(run), *flags, *dry], capsys)
            assert message in err, (flags, err)
    err = _fails(["promote", str(run), "--front", "--set", "constraints.max_gflops=0.005"], capsys)
    assert "; R3D-18: gflops over its limit by 31.2% (constraints.max_gflops = 0.005)" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    assert ray.is_initialized() == ray_was_up  # nor Ray started
    (tmp_path / "b").mkdir()
    running = fake_run(tmp_path / "b", synth_root, {f"abcde_{i:05d}": "running" for i in range(8)})
    assert "has no completed trial (8 running)" in _fails(["promote", str(running), "--front"], capsys)


def test_a_dry_run_prints_the_networks_why_the_trials_and_the_cost(tmp_path, synth_root, capsys):
    from trainers.data.synth import write_synthetic_dataset

    other = tmp_path / "eight"
    write_synthetic_dataset(other, classes=8, videos_per_class=4, frames=24, size=(32, 44), seed=3)
    run = fake_run(tmp_path, synth_root)
    argv = ["promote", str(run), "--front", "--data", f"ucf101:{other}", "--set", "schedule.epochs=3"]
    assert main([*argv, "--dry-run", "--assume-tflops", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "promoting 3 network(s) of" in out and "MC3: on the Pareto front of video@1 vs GFLOPs" in out
    assert "note: the new dataset has 8 classes, the proxy's had 4" in out
    assert "3 trial(s) (1 repeat(s) each), 0 infeasible point(s)" not in out and "6 trial(s) (2 repeat(s) each)" in out
    assert "cost estimate (6 trial(s) of 3 network(s), 3 epoch(s) each):" in out
    assert "assumed 0.001 TFLOP/s per trial" in out and "predicted:" in out
    assert not (tmp_path / "runs" / "proxy-promoted").exists()


def test_a_run_in_a_bucket_is_promoted_by_its_uri(tmp_path, synth_root, capsys):
    """file:// takes pyarrow's path, as s3:// and gs:// do: the proxy is read by its URI and recorded so."""
    run = fake_run(tmp_path, synth_root)
    uri = f"file://{run}"
    assert (
        main(
            ["promote", uri, "--top", "2", "--dry-run", "--assume-tflops", "0.001", "--storage", f"file://{tmp_path}/b"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"promoting 2 network(s) of {uri} (top 2, by video@1) to proxy-promoted:" in out
    assert "R3D-18: rank 1 of 4 by mean video@1" in out and "4 trial(s) (2 repeat(s) each)" in out
    assert not (tmp_path / "b").exists()
