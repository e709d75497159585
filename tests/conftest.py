"""Session-wide fixtures: an isolated frame cache and one small synthetic motion dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Keep every process of the session (Ray workers included) out of ~/.cache/starch; runs skip the
    cost estimate's measurement at their start (a few seconds each; tests/search/test_estimate.py and
    test_promote_e2e.py turn it back on)."""
    os.environ["STARCH_CACHE"] = str(tmp_path_factory.mktemp("starch-cache"))
    os.environ["STARCH_NO_ESTIMATE"] = "1"
    yield


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    """seed → a new folder with 4 motion classes × 16 videos × 24 frames of 32×44 at level 1, UCF101 layout
    (~3 s to write)."""
    from trainers.data.synth import write_synthetic_dataset

    def write(seed: int) -> Path:
        root = tmp_path_factory.mktemp(f"synth-seed{seed}")
        # level 1 (every sprite carries the class motion): the easiest, so tiny trainings learn something
        write_synthetic_dataset(root, classes=4, videos_per_class=16, frames=24, size=(32, 44), seed=seed, level=1)
        return root

    return write


@pytest.fixture(scope="session")
def synth_root(tiny_synthetic) -> Path:
    return tiny_synthetic(0)


@pytest.fixture(scope="session")
def ray_cluster():
    """One Ray instance for the whole session: a simulated cluster whose head has 2 CPUs and no GPU.

    Tests that need more nodes or logical GPUs add them with `ray_cluster.add_node(num_cpus=…,
    num_gpus=…)` and remove them again (`ray_cluster.remove_node(node)`); drivers started in
    subprocesses connect with `--address ray_cluster.address`.
    """
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0})
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
