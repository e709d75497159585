"""How much of a cluster's time goes to trials rather than to the platform.

Runs N fixed-length trials (each reports 10 one-second "epochs" with a per-epoch checkpoint, the way
our trainable does, but sleeps instead of training so the trial length is exact) through starch's
own Tuner (make_tuner: our callbacks, loggers, checkpoint and failure settings) on the session's
simulated cluster, one one-CPU slot per core (more slots than cores would measure four processes
importing torch on two cores, not the platform), and prints

    utilisation = Σ trial time / (wall time × slots)      overhead/trial = (wall × slots − Σ) / N
    start-up = fit() until the first trial runs  (worker processes start, import Ray Tune and torch)
    between trials = a slot's gap from one trial's last report to the next trial's first line

for our settings and, in the same run, for the baseline without actor reuse.

Run: pytest -m benchmark -s tests/benchmarks/test_cluster_utilisation.py
"""

import tempfile
import time

import pytest

EPOCHS, EPOCH_S, TRIALS, SLOTS = 10, 1.0, 12, 2


def fixed_length_trainable(config, indexes=None):
    from ray import tune

    from trainers import checkpoint

    start = time.time()
    state = {"weights": b"\0" * 200_000, "epoch": 0}  # ~ a tiny model's checkpoint
    for epoch in range(1, EPOCHS + 1):
        time.sleep(EPOCH_S)
        state["epoch"] = epoch
        with tempfile.TemporaryDirectory() as d:
            checkpoint.save(d, state)
            tune.report(
                {
                    "epoch": epoch,
                    "video@1": epoch / EPOCHS,
                    "status": "running",
                    "started_at": start,
                    "reported_at": time.time(),
                },
                checkpoint=tune.Checkpoint.from_directory(d),
            )


def run_once(tmp_path, name, monkeypatch, reuse_actors):
    import sys

    import ray.cloudpickle
    from ray import tune

    from search import tuner as tuner_mod
    from search.config import Experiment

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests/
    monkeypatch.setattr(
        tuner_mod,
        "make_trainable",
        lambda exp, indexes, directory: tune.with_resources(fixed_length_trainable, {"cpu": 1}),
    )
    exp = Experiment.model_validate(
        {
            "name": name,
            "space": {"network": ["r3d_18"], "width": list(range(1, TRIALS + 1))},
            "data": {"format": "ucf101", "root": str(tmp_path)},
            "schedule": {"epochs": EPOCHS},
            "resources": {"cpus_per_trial": 1},
            "cluster": {"storage": str(tmp_path / "runs")},
        }
    )
    t = tuner_mod.make_tuner(exp, reuse_actors=reuse_actors)
    start = time.time()
    with tuner_mod.tune_settings():
        results = t.fit()
    wall = time.time() - start
    assert len(results) == TRIALS and all(r.error is None for r in results)
    starts = sorted(r.metrics["started_at"] for r in results)
    ends = sorted(r.metrics["reported_at"] for r in results)
    busy = sum(r.metrics["reported_at"] - r.metrics["started_at"] for r in results)
    # the k-th trial to finish frees the slot the (SLOTS + k)-th trial starts on
    gaps = [b - a for a, b in zip(ends, starts[SLOTS:])]
    return wall, busy, starts[0] - start, sum(gaps) / len(gaps)


@pytest.mark.benchmark
@pytest.mark.timeout(1800)  # two 12-trial runs; on a loaded machine well past pytest's default 300 s
def test_cluster_utilisation(ray_cluster, tmp_path, monkeypatch):
    import ray

    assert ray.cluster_resources().get("CPU") == SLOTS  # the session's head node
    rows = []
    for label, reuse in (("starch (reuse_actors=True)", True), ("baseline: reuse_actors=False", False)):
        wall, busy, startup, between = run_once(tmp_path, f"util-{reuse}", monkeypatch, reuse)
        rows.append((label, wall, busy / (wall * SLOTS), (wall * SLOTS - busy) / TRIALS, startup, between))
    print(
        f"\n{TRIALS} trials × {EPOCHS * EPOCH_S:.0f} s on {SLOTS} slots (ideal wall {TRIALS / SLOTS * EPOCHS * EPOCH_S:.0f} s)"
    )
    print(
        f"{'setting':30s} {'wall s':>7s} {'utilisation':>12s} {'overhead/trial s':>17s} {'start-up s':>11s}"
        f" {'between trials s':>17s} {'wall vs baseline':>17s}"
    )
    for label, wall, util, over, startup, between in rows:
        print(
            f"{label:30s} {wall:7.1f} {util:11.1%} {over:17.2f} {startup:11.1f} {between:17.2f} {wall / rows[1][1]:16.2f}×"
        )
    assert all(0 < r[2] <= 1.0 for r in rows)
