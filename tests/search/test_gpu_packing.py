"""resources.gpus_per_trial: auto — GPU fractions from predicted memory, infeasible when no GPU fits."""

import json

import pytest

from search.cli import main
from search.config import Resources, load_experiment
from search.gpu_packing import gpu_fraction, predicted, resources_fn
from search.tuner import plan
from spaces.memory import GiB
from tests.search.test_failures import max_overlap, records

# f-R2D (≈3.7 MiB predicted at batch 8) fits twice, R2D (≈1.4 MiB) five times into the 8 MiB a
# "GPU" of 0.0087 GiB leaves after 10 % headroom; R(2+1)D (≈12.7 MiB) fits none.
BODY = """
resources:
  gpus_per_trial: auto
  gpu_memory_gb: 0.0087
  cpus_per_trial: 1
"""


def packed_experiment(make_experiment, name="auto"):
    path = make_experiment(name=name, body=BODY)
    text = path.read_text().replace("resources:\n  cpus_per_trial: 1\n", "", 1)
    text = text.replace("network: [r3d_18, f-r2d, mc3]", "network: [r2d, f-r2d, r2plus1d_18]")
    path.write_text(text.replace("  epochs: 2\n", "  epochs: 1\n  precision: fp32\n"))
    return path


def test_fraction_is_one_over_how_many_fit():
    assert gpu_fraction(3, 10) == 0.3333 and gpu_fraction(5, 10) == 0.5 and gpu_fraction(6, 10) == 1.0
    assert gpu_fraction(11, 10) is None
    with pytest.raises(ValueError, match="data-parallel"):
        Resources(gpus_per_trial="auto", workers_per_trial=2)
    with pytest.raises(ValueError, match="must be a number >= 0 or auto, got 'all'"):
        Resources(gpus_per_trial="all")


def test_plan_rejects_what_fits_no_gpu_and_requests_follow_the_prediction(make_experiment):
    exp = load_experiment(packed_experiment(make_experiment))
    p = plan(exp)
    assert sorted(c.arch.name for c in p.candidates) == ["R2D", "f-R2D"]
    assert [i["arch"]["name"] for i in p.infeasible] == ["R(2+1)D"]
    assert "gpu_memory over its limit" in p.infeasible[0]["reason"]
    request = resources_fn(exp)
    usable = 0.0087 * GiB * 0.9
    for c in p.candidates:
        bundle = request(
            {
                "candidate": {"arch": c.arch.to_dict(), "axes": c.axes},
                "data": exp.to_data().to_dict(),
                "recipe": exp.schedule.to_dict(),
            }
        ).bundles[0]
        assert bundle == {"CPU": 1, "GPU": gpu_fraction(predicted(c.arch, exp).peak, usable)}
        assert bundle["GPU"] == {"R2D": 0.2, "f-R2D": 0.5}[c.arch.name]
        sampled = {
            "axes": c.axes,
            "space": exp.to_space().to_dict(),
            "data": exp.to_data().to_dict(),
            "recipe": exp.schedule.to_dict(),
        }  # the form an Optuna sample takes
        assert request(sampled).bundles[0] == bundle


def test_trials_share_a_logical_gpu_by_predicted_memory(ray_cluster, make_experiment):
    node = ray_cluster.add_node(num_cpus=3, num_gpus=1)
    try:
        path = packed_experiment(make_experiment)
        assert main(["search", str(path), "--no-report"]) == 0
        run = path.parent / "runs" / "auto"
        recs = {r[0]["arch_name"]: r for r in records(run).values() if r}
        assert sorted(recs) == ["R2D", "f-R2D"]
        assert {name: r[0]["gpus"] for name, r in recs.items()} == {"R2D": 0.2, "f-R2D": 0.5}
        assert all(r[0]["cuda_visible_devices"] == "0" for r in recs.values())
        assert all(r[0]["predicted_memory_gb"] * GiB < 0.0087 * GiB * 0.9 for r in recs.values())
        spans = [(r[0]["started_at"], r[-1]["reported_at"]) for r in recs.values()]
        assert max_overlap(spans) == 2  # both ran on the one GPU at once (0.2 + 0.5 of it)
        infeasible = json.loads((run / "starch_infeasible.json").read_text())
        assert [i["arch"]["name"] for i in infeasible] == ["R(2+1)D"]
    finally:
        ray_cluster.remove_node(node)
