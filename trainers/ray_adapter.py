"""The only trainers module that imports Ray: the trial loop as a Ray Tune function trainable.

    tuner = Tuner(tune.with_parameters(trainable, indexes=indexes), param_space={"arch": …, "data": …})

Each epoch the loop's record goes to `tune.report(metrics, checkpoint=…)`, so ASHA can stop the
trial early and a trial restarted after a failure (or on another node) continues from its last
checkpoint via `tune.get_checkpoint()`. Large read-only objects (the video index) arrive through
`tune.with_parameters` (Ray's object store), not through the config.
"""
from __future__ import annotations

import tempfile
from typing import Any

from ray import tune

from trainers import checkpoint
from trainers.datasets import VideoIndex
from trainers.trial import resolve, run_trial


def _report(record: dict[str, Any], state: dict[str, Any]) -> None:
    if not state:
        tune.report(record)
        return
    with tempfile.TemporaryDirectory(prefix="starch-ckpt-") as directory:
        checkpoint.save(directory, state)
        tune.report(record, checkpoint=tune.Checkpoint.from_directory(directory))


def trainable(config: dict[str, Any], indexes: dict[str, VideoIndex] | None = None) -> None:
    cfg = resolve(config)
    state = None
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as directory:
            state = checkpoint.load(directory)
    resumed_from = state["epoch"] if state else 0
    run_trial(cfg, _report, state=state, indexes=indexes, static={"resumed_from_epoch": resumed_from})
