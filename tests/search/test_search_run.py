import json
import os
from pathlib import Path

import pytest

from search.cli import main


def trials(run):
    return json.loads((run / "starch_trials.json").read_text())


def test_grid_search_end_to_end(ray_cluster, make_experiment, capsys, monkeypatch):
    from search.tuner import TUNE_SETTINGS

    for key in TUNE_SETTINGS:
        monkeypatch.delenv(key, raising=False)
    path = make_experiment(name="grid")
    assert main(["search", str(path), "--no-report"]) == 0
    # Tune's settings for starch's run are not left behind: a plain Tune run later in this process
    # (the analysis tests' fixture, a user's notebook) writes its result.json as Tune's defaults do
    assert not set(TUNE_SETTINGS) & set(os.environ)
    run = path.parent / "runs" / "grid"
    ts = trials(run)
    assert len(ts) == 3 and all(t["status"] == "TERMINATED" and t["epoch"] == 2 for t in ts)
    assert {t["arch_name"] for t in ts} == {"R3D-18", "f-R2D", "MC3"}
    exp = json.loads((run / "starch_experiment.json").read_text())
    assert exp["space"]["num_classes"] == [4]  # the dataset's class count
    out = capsys.readouterr().out
    assert "run folder:" in out and "3 trial(s), 0 errored" in out

    # a driver killed between a trial's start and Tune's next snapshot leaves a folder that the
    # restored experiment does not know; resume moves it aside instead of listing a trial twice
    ghost = run / "0000dead_R3D-18"
    ghost.mkdir()
    (ghost / "params.json").write_text(next(run.glob("*_R3D-18/params.json")).read_text())
    assert main(["resume", str(run), "--no-report"]) == 0
    assert "1 trial folder(s) started after the killed driver's last experiment snapshot" in capsys.readouterr().out
    assert not ghost.exists() and (run / "orphaned" / ghost.name / "params.json").is_file()
    from analysis import load

    assert len(load([run])) == 3 and len(trials(run)) == 3


@pytest.mark.parametrize("algorithm, scheduler", [("random", "asha"), ("tpe", "asha"), ("nsga2", "fifo")])
def test_model_based_search_with_constraints(ray_cluster, make_experiment, algorithm, scheduler, capsys):
    # r2plus1d at k = 4 is over the GFLOPs limit: it must never become a trial, but be recorded.
    body = f"""
        constraints:
          max_gflops: 0.0070
        search:
          algorithm: {algorithm}
          num_samples: 4
          seed: 1
        scheduler:
          type: {scheduler}
          grace_period: 1
          reduction_factor: 2
        """
    path = make_experiment(name=algorithm, body=body)
    text = path.read_text().replace("network: [r3d_18, f-r2d, mc3]", "network: [r3d_18, f-r2d, mc3, r2plus1d_18]")
    path.write_text(text.replace("schedule:\n  epochs: 2", "schedule:\n  epochs: 3"))
    assert main(["search", str(path), "--no-report"]) == 0
    run = path.parent / "runs" / algorithm
    ts = trials(run)
    # 3 feasible networks: a sampler that proposes one again is not given a fourth trial
    assert len(ts) == 3 and all(t["status"] == "TERMINATED" for t in ts)
    assert sorted(t["arch_name"] for t in ts) == ["MC3", "R3D-18", "f-R2D"]
    infeasible = json.loads((run / "starch_infeasible.json").read_text())
    assert infeasible and all(
        i["axes"]["network"] == "r2plus1d_18" and "gflops over" in i["reason"] for i in infeasible
    )
    if scheduler == "asha":  # ASHA stops some trials before the last epoch
        assert any(t["stopped_early"] for t in ts) or all(t["epoch"] == 3 for t in ts)
    # the progress line counts no trial the searcher could not create (4 points, 1 infeasible, 3 ran)
    last = [line for line in capsys.readouterr().out.splitlines() if " pending, " in line][-1]
    assert "(0 pending, 0 running, " in last


def test_grid_dry_run_lists_infeasible_points(make_experiment, capsys):
    path = make_experiment(name="dry", body="constraints:\n  max_gflops: 0.0070\n")
    path.write_text(path.read_text().replace("network: [r3d_18, f-r2d, mc3]", "network: [r3d_18, r2plus1d_18]"))
    assert main(["search", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 trial(s) (1 repeat(s) each), 1 infeasible point(s)" in out
    assert "infeasible: gflops over its limit" in out


def test_a_run_on_shared_storage_is_searched_resumed_and_reported_by_uri(
    ray_cluster, make_experiment, tmp_path, capsys, monkeypatch
):
    """`cluster.storage` as a URI (file:// here; s3:// and gs:// take the same pyarrow path): the
    starch files are written there too, and status, report and resume read the run by its URI."""
    from analysis import load

    path = make_experiment(name="shared")
    uri = f"file://{tmp_path}/bucket"
    monkeypatch.chdir(tmp_path)
    assert main(["search", str(path), "--storage", uri]) == 0
    run = tmp_path / "bucket" / "shared"
    assert {"starch_experiment.json", "starch_trials.json", "starch_infeasible.json"} <= {p.name for p in run.iterdir()}
    assert (tmp_path / "shared-report" / "report.md").is_file()  # a URI's report is written locally
    capsys.readouterr()

    assert main(["status", f"{uri}/shared"]) == 0
    out = capsys.readouterr().out
    assert f"{uri}/shared: 3 trial(s): 3 completed" in out
    by_uri, local = load([f"{uri}/shared"]), load([run])
    cols = ["trial_id", "label", "status", "final_video@1"]
    assert by_uri[cols].equals(local[cols])
    copy = Path(by_uri.attrs["notes"][0].split(" copied to ")[1].split(" (")[0])
    assert not list(copy.rglob("checkpoint_*")) and list(run.rglob("checkpoint_*"))  # results only

    assert main(["resume", f"{uri}/shared", "--no-report"]) == 0  # a finished run: nothing left to do
    assert "3 trial(s), 0 errored" in capsys.readouterr().out


def test_tpe_never_runs_a_configuration_twice(tmp_path, synth_root):
    """TPE sampled the same network, sampling rate and seed three times in five trials before."""
    from ray.tune.search import Searcher

    from search.config import load_experiment
    from search.tuner import make_searcher
    from tests.search.conftest import tiny_experiment

    path = tiny_experiment(tmp_path, synth_root, body="search:\n  algorithm: tpe\n  num_samples: 20\n  seed: 3\n")
    path.write_text(path.read_text().replace("sampling_rate: 2", "sampling_rate: [1, 2]"))
    searcher = make_searcher(load_experiment(path), None)
    seen = []
    for i in range(10):
        config = searcher.suggest(f"t{i}")
        if config == Searcher.FINISHED:
            break
        seen.append(json.dumps(config["candidate"]["axes"], sort_keys=True))
        searcher.on_trial_complete(f"t{i}", {"video@1": 0.1 * (i % 3), "training_iteration": 1})
    assert len(seen) == 6 == len(set(seen))  # 3 networks × 2 rates, each once, then finished
    assert searcher.duplicates > 0  # TPE did propose repeats; they were not run


def test_a_sample_is_resolved_once_on_the_driver(tmp_path, synth_root, monkeypatch):
    """The searcher's suggestion is the trial's resolved candidate (arch with k solved, seed, costs);
    k is solved once per sample (the OptunaSpace's check), not again by the searcher or the trial."""
    import spaces.space
    from search.config import load_experiment
    from search.tuner import make_searcher
    from spaces import ArchSpec, cost
    from tests.search.conftest import tiny_experiment
    from trainers.trial import resolve

    path = tiny_experiment(tmp_path, synth_root, body="search:\n  algorithm: random\n  num_samples: 4\n  seed: 2\n")
    path.write_text(path.read_text().replace("width: 4", "budget: 0.3M"))
    exp = load_experiment(path)
    searcher = make_searcher(exp, None)
    solved = []
    real = spaces.space.solve_width
    monkeypatch.setattr(spaces.space, "solve_width", lambda *a, **k: solved.append(a) or real(*a, **k))
    config = searcher.suggest("t0")
    assert len(solved) == 1
    cand = config["candidate"]
    arch = ArchSpec.from_dict(cand["arch"])
    assert arch == exp.to_space().to_arch({k: tuple(v) if isinstance(v, list) else v for k, v in cand["axes"].items()})
    assert (cand["params"], cand["gflops"]) == (cost(arch).params, cost(arch).gflops)
    assert cand["seed"] == exp.schedule.seed + cand["repeat"]
    trial = resolve({**config, "data": exp.to_data().to_dict(), "recipe": exp.schedule.to_dict()})
    assert trial.arch == arch and len(solved) == 2  # the check above solved once more; the trial did not
