"""Real run folders for the analysis tests: tiny Ray Tune runs of our trainable, once per session.

    runs["ucf"]   synthetic dataset A, no starch_*.json (the loader must infer): R3D-18 at sampling
                  rates 1 and 2 (a one-axis sweep), MC3, f-R2D stopped after epoch 1 by a Tune stop
                  rule (as ASHA would), an MC3 with a crop too small, which errors (error.txt), and an
                  R(2+1)D trained at LR 1e30, which diverges (status "diverged" in its record)
    runs["hmdb"]  synthetic dataset B with starch_experiment.json written as the search layer does:
                  R3D-18, MC3, f-R2D, each with seeds 0 and 1 (repeats)

About 25 s in total on 2 CPUs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SMALL = dict(width=4, frames=8, crop=32, sampling_rate=2, blocks=(1, 1, 1, 1))


def _arch(name: str, **overrides) -> dict:
    from spaces import named

    return named(name, **{**SMALL, **overrides}).to_dict()


def _data(root: Path) -> dict:
    from trainers.data.datasets import DataSpec

    return DataSpec(
        format="ucf101", root=str(root), resize=None, num_workers=0, batch_size=8, eval_clips=2, cache=True
    ).to_dict()


def _lr(spec) -> float:
    """LR 1e30 for R(2+1)D (it diverges in its first epoch), 0.05 for the others."""
    return 1e30 if spec.config["arch"]["name"] == "R(2+1)D" else 0.05


def _stop_f_r2d(trial_id: str, result: dict) -> bool:
    """Stop f-R2D after its first epoch, as an ASHA rung would."""
    return result.get("arch_name") == "f-R2D" and result.get("epoch", 0) >= 1


def tune_run(storage: Path, name: str, space: dict, stop=None) -> Path:
    from ray import tune

    from trainers.ray_adapter import trainable

    tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(reuse_actors=True),  # one torch import per worker, not per trial
        run_config=tune.RunConfig(storage_path=str(storage), name=name, verbose=0, stop=stop),
    ).fit()
    return storage / name


@pytest.fixture(scope="session")
def second_root(tiny_synthetic) -> Path:
    return tiny_synthetic(1)


@pytest.fixture(scope="session")
def runs(ray_cluster, synth_root, second_root, tmp_path_factory) -> dict[str, Path]:
    from ray import tune

    storage = tmp_path_factory.mktemp("runs")
    too_small = {**_arch("mc3"), "crop": 8}  # below the network's minimum crop: ArchSpec raises in the trial
    ucf = tune_run(
        storage,
        "ucf",
        {
            "arch": tune.grid_search(
                [
                    _arch("r3d_18"),
                    _arch("r3d_18", sampling_rate=1),
                    _arch("mc3"),
                    _arch("f-r2d"),
                    too_small,
                    _arch("r2plus1d_18"),
                ]
            ),
            "data": _data(synth_root),
            "recipe": {"epochs": 2, "lr": tune.sample_from(_lr)},
        },
        stop=_stop_f_r2d,
    )
    hmdb = tune_run(
        storage,
        "hmdb",
        {
            "arch": tune.grid_search([_arch("r3d_18"), _arch("mc3"), _arch("f-r2d")]),
            "data": _data(second_root),
            "recipe": {"epochs": 2, "lr": 0.05, "seed": tune.grid_search([0, 1])},
        },
    )
    experiment = {
        "name": "hmdb",
        "search": {"metric": "video@1", "mode": "max"},
        "dataset": "synth-B",
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0.5},
    }
    (hmdb / "starch_experiment.json").write_text(json.dumps(experiment))
    return {"ucf": ucf, "hmdb": hmdb}
