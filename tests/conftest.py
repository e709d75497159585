"""Session-wide fixtures: an isolated frame cache and one small synthetic motion dataset."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Keep every process of the session (Ray workers included) out of ~/.cache/starch."""
    os.environ["STARCH_CACHE"] = str(tmp_path_factory.mktemp("starch-cache"))
    yield


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """4 motion classes × 16 videos × 24 frames of 32×44, UCF101 layout (~3 s to write)."""
    from trainers.synth import write_synthetic_dataset

    root = tmp_path_factory.mktemp("synth")
    write_synthetic_dataset(root, classes=4, videos_per_class=16, frames=24, size=(32, 44), seed=0)
    return root
