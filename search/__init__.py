"""search: an experiment (YAML) becomes one Ray Tune run; the CLI.

Public for Ray's own readers of a run folder (see the README, "Opening a run in other tools"):

    from ray import tune
    from search import trainable_for
    tuner = tune.Tuner.restore(RUN_DIR, trainable=trainable_for(RUN_DIR))

Kept light: importing `search` imports neither Ray nor torch.
"""


def trainable_for(run):
    """See search.tuner.trainable_for."""
    from search.tuner import trainable_for as _trainable_for

    return _trainable_for(run)


__all__ = ["trainable_for"]
