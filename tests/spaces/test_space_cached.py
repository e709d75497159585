"""Space.cached: the validated Space shared by equal arguments, equal to a fresh one."""

import pytest

from spaces.space import Space


def test_cached_space_is_validated_once_and_equals_a_fresh_one():
    axes = {"network": ["r3d_18", {"network": "mc3", "width": 4, "name": "MC3 k4"}], "width": [8, 2, 4], "frames": [8]}
    cached = Space.cached(axes, "nearest")
    assert Space.cached({k: list(v) for k, v in axes.items()}, "nearest") is cached
    fresh = Space(axes=axes, width_rule="nearest")
    assert cached.axes == fresh.axes and list(cached.grid()) == list(fresh.grid())  # axis order is the grid order
    assert Space.cached(axes, "under") is not cached


def test_cached_space_still_rejects_a_bad_value_every_time():
    for _ in range(2):
        with pytest.raises(ValueError, match="no_such_net"):
            Space.cached({"network": ["no_such_net"]})
