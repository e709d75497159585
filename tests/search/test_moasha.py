"""MO-ASHA's promotion rule on hand-made results (no Ray), then one tiny real search and a killed driver."""

import json
import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest

from search.moasha import (
    MOASHAScheduler,
    RungStateCallback,
    mo_order,
    network_key,
    nondominated_fronts,
    promote,
    rung_milestones,
)

OBJ = [("video@1", "max"), ("gflops", "min")]


def result(epoch, acc, gflops):
    return {"epoch": epoch, "video@1": acc, "gflops": gflops}


def cfg(name, repeat=0):
    return {"candidate": {"axes": {"network": name}, "arch": {"name": name}, "repeat": repeat}}


def test_rungs_are_asha_milestones_below_max_t():
    assert rung_milestones(1, 3, 12) == [1, 3, 9]
    assert rung_milestones(1, 2, 4) == [1, 2]
    assert rung_milestones(2, 3, 18) == [2, 6]
    assert rung_milestones(5, 3, 4) == []


def test_nondominated_fronts_minimise_every_objective():
    pts = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [6, 6]])
    assert nondominated_fronts(pts) == [[0, 1, 2], [3], [4]]


def test_epsilon_net_puts_the_most_accurate_first_then_the_farthest():
    # one front (minimised: -accuracy, gflops): most accurate (0), then the far end (2), then the middle
    pts = np.array([[-90.0, 1.0], [-85.0, 0.9], [-40.0, 0.1]])
    assert mo_order(pts) == [0, 2, 1]
    # a dominated point comes after the whole front, whatever its accuracy
    pts = np.array([[-90.0, 1.0], [-89.0, 1.5], [-40.0, 0.1]])
    assert mo_order(pts)[-1] == 1


def test_a_cheap_network_on_the_front_continues_where_accuracy_alone_would_stop_it():
    s = MOASHAScheduler(OBJ, max_t=9, grace_period=1, reduction_factor=3)
    for name, acc, g in [("big", 90, 1.0), ("mid", 80, 0.8), ("worse", 70, 0.9)]:
        s.decide(name, cfg(name), result(1, acc, g))
    # 'tiny' is the least accurate of four (ASHA on accuracy stops it) but the cheapest: on the front,
    # and the farthest from the most accurate network, so it is second in the order: 1 < 4/3
    assert s.decide("tiny", cfg("tiny"), result(1, 20, 0.05)) == "CONTINUE"
    # a network dominated by 'mid' (less accurate and dearer) is stopped
    assert s.decide("bad", cfg("bad"), result(1, 60, 0.85)) == "STOP"
    assert [d["continue"] for d in s.decisions][-2:] == [True, False]


def test_seeds_of_one_network_are_judged_together_by_their_mean():
    values = {"a": [-80.0, 1.0], "b": [-60.0, 1.0]}
    assert not promote(values, "b", 3)
    s = MOASHAScheduler(OBJ, max_t=9, reduction_factor=2)
    assert network_key(cfg("x", 0)) == network_key(cfg("x", 1)) != network_key(cfg("y"))
    s.decide("x0", cfg("x", 0), result(1, 90, 1.0))
    s.decide("y0", cfg("y", 0), result(1, 70, 1.0))
    # seed 1 of x is poor; x's value is the mean (50 %) of its two seeds, now below y: x1 stops
    assert s.decide("x1", cfg("x", 1), result(1, 10, 1.0)) == "STOP"
    assert s.network_values(1)[network_key(cfg("x"))] == pytest.approx([-50.0, 1.0])
    assert len(s.rungs[1]) == 2  # two networks at the rung, not three trials


def test_no_metric_is_no_decision_and_max_t_stops():
    s = MOASHAScheduler(OBJ, max_t=4, grace_period=1, reduction_factor=2)
    assert s.decide("a", cfg("a"), {"epoch": 1, "gflops": 1.0}) == "CONTINUE"  # not an eval epoch
    assert s.rungs[1] == {}
    assert s.decide("a", cfg("a"), result(4, 10, 1.0)) == "STOP"
    with pytest.raises(ValueError, match="two objectives"):
        MOASHAScheduler(OBJ[:1], max_t=4)


def test_a_late_eval_epoch_is_recorded_at_the_rung_it_passed_once():
    s = MOASHAScheduler(OBJ, max_t=12, grace_period=1, reduction_factor=3)  # rungs 1, 3, 9
    s.decide("a", cfg("a"), result(4, 50, 1.0))  # evaluates every 2nd epoch: first result past rung 3
    assert "a" in next(iter(s.rungs[3].values())) and not s.rungs[1]
    s.decide("a", cfg("a"), result(4, 50, 1.0))
    assert sum(len(v) for v in s.rungs[3].values()) == 1


def test_rung_state_survives_pickle_and_the_callback_snapshot():
    s = MOASHAScheduler(OBJ, max_t=9)
    s.decide("a", cfg("a"), result(1, 50, 1.0))
    cb = RungStateCallback(s)
    state = json.loads(json.dumps(cb.get_state()))  # Tune writes it as a cloudpickle; JSON is stricter
    restored_sched, restored_cb = pickle.loads(pickle.dumps((MOASHAScheduler(OBJ, max_t=9), None)))
    RungStateCallback(restored_sched).set_state(state)
    assert restored_sched.rungs == s.rungs and restored_sched.decisions == s.decisions
    # the scheduler and its callback unpickle as one object graph (what tuner.pkl relies on)
    s2, cb2 = pickle.loads(pickle.dumps((s, cb)))
    assert cb2.scheduler is s2


def test_config_accepts_moasha_with_nsga2_and_dry_run_prints_the_rungs(make_experiment, capsys):
    from search.cli import main
    from search.config import load_experiment
    from search.tuner import make_scheduler

    path = make_experiment(
        name="mo",
        body="search:\n  algorithm: nsga2\n  num_samples: 4\n"
        "scheduler:\n  type: moasha\n  grace_period: 1\n  reduction_factor: 3\n",
    )
    path.write_text(path.read_text().replace("epochs: 2", "epochs: 12"))
    exp = load_experiment(path)
    sched = make_scheduler(exp)
    assert isinstance(sched, MOASHAScheduler) and sched.milestones == [1, 3, 9]
    assert sched.objectives == OBJ
    assert main(["search", str(path), "--dry-run"]) == 0
    assert "MO-ASHA: rungs at epoch 1, 3, 9 of 12" in capsys.readouterr().out


def trial_records(run: Path) -> dict[str, list[dict]]:
    out = {}
    for trial in sorted(p for p in run.iterdir() if p.is_dir() and (p / "params.json").exists()):
        lines = (trial / "result.json").read_text().splitlines() if (trial / "result.json").exists() else []
        out[trial.name] = [json.loads(line) for line in lines if line.strip()]
    return out


MO_BODY = (
    "scheduler:\n  type: moasha\n  grace_period: 1\n  reduction_factor: 2\n"
    "resources:\n  cpus_per_trial: 1\n  max_concurrent_trials: 1\n"
)


def test_tiny_real_search_with_repeats_stops_by_pareto_rank(ray_cluster, make_experiment):
    from search.cli import main

    path = make_experiment(name="moreal", body="search:\n  repeats: 2\n" + MO_BODY)
    path.write_text(
        path.read_text()
        .replace("resources:\n  cpus_per_trial: 1\n", "", 1)
        .replace("network: [r3d_18, f-r2d, mc3]", "network: [r3d_18, f-r2d]")
        .replace("epochs: 2", "epochs: 3")
    )
    assert main(["search", str(path), "--no-report"]) == 0
    run = path.parent / "runs" / "moreal"
    recs = trial_records(run)
    assert len(recs) == 4 and all(r[0]["gflops"] > 0 for r in recs.values())
    # replay the reported records, in the order they arrived, through the rule: the trials the
    # real scheduler stopped are exactly the ones the rule stops, at the same epoch
    configs = {name: json.loads((run / name / "params.json").read_text()) for name in recs}
    replay = MOASHAScheduler(OBJ, max_t=3, grace_period=1, reduction_factor=2)
    stopped_at = {}
    for name, rec in sorted(((n, r) for n, rs in recs.items() for r in rs), key=lambda x: x[1]["reported_at"]):
        if replay.decide(name, configs[name], rec) == "STOP" and rec["epoch"] < 3:
            stopped_at[name] = rec["epoch"]
    assert {n: len(r) for n, r in recs.items() if len(r) < 3} == stopped_at
    assert replay.decisions and max(len(r) for r in recs.values()) == 3
    # both seeds of a network share one entry per rung
    assert all(len(replay.rungs[1][k]) == 2 for k in replay.rungs[1])


@pytest.mark.slow  # a killed driver and a resume: ~30–50 s on this machine
def test_nsga2_killed_driver_resumes_with_the_rungs(ray_cluster, make_experiment):
    from search.cli import main

    path = make_experiment(name="mokill", body="search:\n  algorithm: nsga2\n  num_samples: 4\n  seed: 1\n" + MO_BODY)
    path.write_text(
        path.read_text()
        .replace("resources:\n  cpus_per_trial: 1\n", "", 1)
        .replace("epochs: 2", "epochs: 3")
        .replace("sampling_rate: 2", "sampling_rate: [1, 2]")  # 6 points for 4 samples (repeats are not re-run)
    )
    run = path.parent / "runs" / "mokill"
    from tests.search.test_failures import start_driver

    driver = start_driver(path, ray_cluster.address, start_new_session=True)
    from tests.search.test_failures import epochs_done, wait_for

    snapshot = lambda: sorted(run.glob("callback-states-*.pkl")) if run.exists() else []
    try:
        # two trials past rung 1 and a snapshot of the rungs written after that
        assert wait_for(
            lambda: sum(n >= 2 for n in epochs_done(run)) >= 1 and len(epochs_done(run)) >= 2 and snapshot(),
            timeout=240,
        ), "driver made no progress"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    import cloudpickle

    saved = cloudpickle.loads(snapshot()[-1].read_bytes())
    saved_rung1 = {t for net in next(v for v in saved.values() if v)["moasha"]["rungs"]["1"].values() for t in net}
    assert saved_rung1, "the snapshot holds no rung"
    assert main(["resume", str(run), "--no-report"]) == 0
    restored = cloudpickle.loads(snapshot()[-1].read_bytes())
    state = next(v for v in restored.values() if v)["moasha"]
    rung1 = {t for net in state["rungs"]["1"].values() for t in net}
    assert saved_rung1 <= rung1  # the rungs recorded before the kill are still there
    assert len(trial_records(run)) == 4
    # trials recorded before the kill are not judged a second time at rung 1
    judged = [d["trial_id"] for d in state["decisions"] if d["rung"] == 1]
    assert len(judged) == len(set(judged))


@pytest.mark.parametrize("algorithm", ["grid", "random", "tpe", "nsga2"])
def test_every_search_algorithm_builds_a_tuner_with_moasha(make_experiment, tmp_path, algorithm):
    from search.config import load_experiment
    from search.tuner import make_tuner

    path = make_experiment(
        name=f"mo-{algorithm}",
        body=f"search:\n  algorithm: {algorithm}\n  num_samples: 2\nscheduler:\n  type: moasha\n",
    )
    exp = load_experiment(path)
    tuner = make_tuner(exp)  # nsga2 + asha is refused here; nsga2 + moasha is not
    config = tuner._local_tuner  # the Tuner keeps its configs on its local tuner (Ray private)
    assert isinstance(config._tune_config.scheduler, MOASHAScheduler)
    assert any(
        isinstance(cb, RungStateCallback) and cb.scheduler is config._tune_config.scheduler
        for cb in config._run_config.callbacks
    )
    if algorithm == "nsga2":
        asha = load_experiment(path, overrides={"scheduler.type": "asha"})
        with pytest.raises(ValueError, match="use scheduler.type: moasha or fifo"):
            make_tuner(asha)


def test_asha_rungs_survive_a_resume_through_the_callback_snapshot():
    """Tune rebuilds schedulers as at the start on restore: without the callback a resumed ASHA judged
    the next result against empty rungs and let a trial through that the run had already outranked."""
    from types import SimpleNamespace

    import ray.cloudpickle as cloudpickle
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    from search.tuner import scheduler_callbacks

    def fresh():
        return ASHAScheduler(time_attr="epoch", metric="acc", mode="max", max_t=9, grace_period=1, reduction_factor=3)

    s = fresh()
    trials = {t: SimpleNamespace(trial_id=t) for t in "abcd"}
    for t, acc in zip("abc", (90.0, 80.0, 70.0)):
        s.on_trial_add(None, trials[t])
        s.on_trial_result(None, trials[t], {"epoch": 1, "acc": acc})
    (cb,) = scheduler_callbacks(s)
    state = cloudpickle.loads(cloudpickle.dumps(cb.get_state()))  # as Tune writes the snapshot

    restored, empty = fresh(), fresh()
    scheduler_callbacks(restored)[0].set_state(state)
    for sched in (restored, empty):
        sched.on_trial_add(None, trials["d"])
    late = {"epoch": 1, "acc": 60.0}  # worse than every trial at the rung
    assert restored.on_trial_result(None, trials["d"], late) == TrialScheduler.STOP
    assert empty.on_trial_result(None, trials["d"], late) == TrialScheduler.CONTINUE  # what resume did before


def test_hyperband_and_fifo_carry_no_rung_callback():
    from ray.tune.schedulers import FIFOScheduler, HyperBandScheduler

    from search.tuner import scheduler_callbacks

    assert scheduler_callbacks(FIFOScheduler()) == []
    assert scheduler_callbacks(HyperBandScheduler(time_attr="epoch", max_t=9)) == []
