"""How much of a cluster's time goes to trials rather than to the platform.

Runs N fixed-length trials (each reports 10 one-second "epochs" with a per-epoch checkpoint, the way
our trainable does, but sleeps instead of training so the trial length is exact) through starch's
own Tuner (make_tuner: our callbacks, loggers, checkpoint and failure settings) on a simulated
cluster of 4 one-CPU slots, and prints

    utilisation = Σ trial time / (wall time × slots)      per-trial overhead = (wall × slots − Σ) / N

for our settings and, in the same run, for the baseline without actor reuse.

Run: pytest -m benchmark -s tests/benchmarks/test_cluster_utilisation.py
"""
import tempfile
import time

import pytest

EPOCHS, EPOCH_S, TRIALS, SLOTS = 10, 1.0, 12, 4


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
            tune.report({"epoch": epoch, "video@1": epoch / EPOCHS, "status": "running",
                         "started_at": start, "reported_at": time.time()},
                        checkpoint=tune.Checkpoint.from_directory(d))


def run_once(tmp_path, name, monkeypatch, reuse_actors):
    import sys

    import ray.cloudpickle
    from ray import tune

    from search import tuner as tuner_mod
    from search.config import Experiment

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests/
    monkeypatch.setattr(tuner_mod, "make_trainable",
                        lambda exp, indexes: tune.with_resources(fixed_length_trainable, {"cpu": 1}))
    exp = Experiment.model_validate({
        "name": name,
        "space": {"network": ["r3d_18"], "width": list(range(1, TRIALS + 1))},
        "data": {"format": "ucf101", "root": str(tmp_path)},
        "schedule": {"epochs": EPOCHS},
        "resources": {"cpus_per_trial": 1},
        "cluster": {"storage": str(tmp_path / "runs")},
    })
    t = tuner_mod.make_tuner(exp, reuse_actors=reuse_actors)
    start = time.time()
    results = t.fit()
    wall = time.time() - start
    busy = sum(r.metrics["reported_at"] - r.metrics["started_at"] for r in results)
    assert len(results) == TRIALS and all(r.error is None for r in results)
    return wall, busy


@pytest.mark.benchmark
def test_cluster_utilisation(ray_cluster, tmp_path, monkeypatch):
    node = ray_cluster.add_node(num_cpus=SLOTS - 2)
    try:
        rows = []
        for label, reuse in (("starch (reuse_actors=True)", True), ("baseline: reuse_actors=False", False)):
            wall, busy = run_once(tmp_path, f"util-{reuse}", monkeypatch, reuse)
            rows.append((label, wall, busy / (wall * SLOTS), (wall * SLOTS - busy) / TRIALS))
    finally:
        ray_cluster.remove_node(node)
    print(f"\n{TRIALS} trials × {EPOCHS * EPOCH_S:.0f} s on {SLOTS} slots (ideal wall {TRIALS / SLOTS * EPOCHS * EPOCH_S:.0f} s)")
    print(f"{'setting':32s} {'wall s':>8s} {'utilisation':>12s} {'overhead/trial s':>17s} {'wall vs baseline':>17s}")
    for label, wall, util, over in rows:
        print(f"{label:32s} {wall:8.1f} {util:11.1%} {over:17.2f} {wall / rows[1][1]:16.2f}×")
    assert all(0 < r[2] <= 1.0 for r in rows)
