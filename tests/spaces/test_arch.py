import json

import pytest

from spaces import NETWORKS, ArchSpec, named


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_specs_round_trip_through_json(name):
    spec = NETWORKS[name]
    again = ArchSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert hash(again) == hash(spec)


@pytest.mark.parametrize(
    "changes, field, valid",
    [
        ({"convs": ("3d", "4d", "3d", "3d", "3d")}, "conv2_x", "p3d-mixed"),
        ({"convs": ("p3d-a",) + ("3d",) * 4}, "conv1", "fold"),
        ({"convs": ("3d",) * 4}, "convs", "5 kinds"),
        ({"convs": ("3d", "p3d-a", "3d", "3d", "3d")}, "bottleneck", "block="),
        ({"convs": ("fold", "3d", "2d", "2d", "2d")}, "fold", "'2d'"),
        ({"width": 0}, "width", "greater than or equal to 1 (got 0)"),
        ({"width": 2.5}, "width", "valid integer (got 2.5)"),
        ({"blocks": (2, 2, 2)}, "blocks", "4 block counts"),
        ({"blocks": (2, 0, 2, 2)}, "blocks", ">= 1 (conv2_x … conv5_x), got [2, 0, 2, 2]"),
        ({"crop": 8}, "crop", "crop >= 16"),
        ({"block": "wide"}, "block", "bottleneck"),
        ({"temporal_stride": "some"}, "temporal_stride", "conv"),
        ({"stem_kernel": 4}, "stem_kernel", "odd"),
        ({"frames": 0}, "frames", "greater than or equal to 1"),
    ],
)
def test_invalid_specs_name_the_field_and_the_valid_values(changes, field, valid):
    with pytest.raises(ValueError) as err:
        NETWORKS["sr18"].replace(**changes)
    assert field in str(err.value) and valid in str(err.value)


def test_stem_pool_raises_the_minimum_crop():
    with pytest.raises(ValueError, match="crop >= 32"):
        named("resnet50_2d", crop=24)


def test_unknown_names_and_fields_are_errors():
    with pytest.raises(ValueError, match="unknown network 'mc6'.*mc5"):
        named("mc6")
    with pytest.raises(ValueError, match="ArchSpec: widht: unknown key"):
        ArchSpec.from_dict({"widht": 3})


def test_named_overrides_keep_the_family():
    spec = named("mc3", frames=4, temporal_stride="all", width=108)
    assert (spec.name, spec.convs, spec.width, spec.frames) == ("MC3", ("3d", "3d", "2d", "2d", "2d"), 108, 4)


def test_mixed_and_reversed_convolutions_follow_the_papers():
    assert named("mc2").convs == ("3d", "2d", "2d", "2d", "2d")
    assert named("rmc3").convs == ("2d", "2d", "3d", "3d", "3d")
    assert named("mc1").convs == ("2d",) * 5
    assert named("p3d_199").convs == ("2d", "p3d-mixed", "p3d-mixed", "p3d-mixed", "2d")
    assert named("p3d_199").depth == 152 and sum(named("p3d_199").blocks[:3]) == 47  # 152 + 47 = 199
