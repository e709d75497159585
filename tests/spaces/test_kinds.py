"""Conv kinds declared once (spaces.kinds): the module and the cost both come from the declaration;
X3D's channel-wise kind and the bottleneck width γb."""

import pytest
import torch
from torch import nn

from spaces import ArchSpec, build, cost, named
from spaces.blueprint import blueprint, make_conv
from spaces.builder import SlotModule
from spaces.kinds import BOTTLENECK_KINDS, KINDS, STAGE_KINDS, STEM_KINDS, layers


def _slot(kind):
    mid = 5 if KINDS[kind].mid else None
    channels = 6 if kind == "x3d" else 4  # channel-wise keeps its channels
    return make_conv(kind, channels if kind != "fold" else 12, 6, t=3, d=3, mid=mid)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_module_has_exactly_the_declared_layers(kind):
    slot = _slot(kind)
    module = SlotModule(slot)
    state = module.state_dict()
    expected = {}
    for unit in layers(slot).units:
        c = unit.conv
        expected[f"{c.path}.weight"] = (c.cout, c.cin // c.groups, *c.kernel)
        for b in ("weight", "bias", "running_mean", "running_var"):
            expected[f"{unit.bn_path}.{b}"] = (c.cout,)
        expected[f"{unit.bn_path}.num_batches_tracked"] = ()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    convs = [m for m in module.modules() if isinstance(m, nn.Conv3d)]
    assert [m.groups for m in convs] == [u.conv.groups for u in layers(slot).units]


def test_in_place_relus_only_where_autograd_allows():
    """Issue 12: a ReLU after a slot runs in place only if the slot ends with its BN (not with a
    ReLU output that autograd keeps, as P3D's), so every kind trains."""
    ends = {kind: layers(_slot(kind)).ends_with_bn for kind in KINDS}
    assert [k for k, v in ends.items() if not v] == ["p3d-a", "p3d-b", "p3d-c"]
    for kind in [k for k in STAGE_KINDS if k != "2d"]:
        block = "bottleneck" if kind in BOTTLENECK_KINDS else "basic"
        spec = ArchSpec(convs=("3d", *[kind] * 4), blocks=(1, 1, 1, 1), block=block, width=2, frames=4, crop=16)
        model = build(spec, zero_init_residual=True).train()
        model(torch.randn(2, 3, 4, 16, 16)).logsumexp(1).mean().backward()  # raises if a saved tensor was overwritten
        assert all(p.grad is not None for p in model.parameters())


def test_kind_tuples_are_derived_from_the_table():
    assert STEM_KINDS == ("3d", "2d", "2plus1d", "2plus1d-tv", "2.5d", "fold")
    assert "x3d" in STAGE_KINDS and "p3d-mixed" in STAGE_KINDS and "fold" not in STAGE_KINDS
    assert set(BOTTLENECK_KINDS) == {"p3d-a", "p3d-b", "p3d-c", "p3d-mixed", "x3d"}


def test_x3d_block_is_an_inverted_bottleneck_with_a_channel_wise_conv():
    spec = named("x3d_s", width=4, frames=4, crop=32)
    stage3 = blueprint(spec).stages[1][0]  # conv3_1: 4·4k = 32 out, γb = 2.25 → 72 inner
    expand, middle, project = stage3.convs
    assert (expand.cout, middle.cin, middle.cout, project.cout) == (72, 72, 72, 32)
    assert expand.stride == (1, 1) and middle.stride == (1, 2)  # X3D strides the 3×3×3, not the 1×1×1
    assert middle.t == middle.d == 3
    model = build(spec)
    dw = model.layers[1][0].convs[1].get_submodule("0")
    assert dw.groups == dw.in_channels == dw.out_channels == 72
    assert tuple(dw.weight.shape) == (72, 1, 3, 3, 3)
    c = cost(spec)
    row = next(l for l in c.layers if l.name == "conv3_1.b")
    assert row.params == 72 * 27 and row.out_shape == (72, 4, 4, 4)  # no temporal stride ("none")


@pytest.mark.parametrize("ratio, inner", [(0.25, 8), (0.5, 16), (1, 32), (2.25, 72), (0.3, 9)])
def test_bottleneck_ratio_sets_the_inner_width(ratio, inner):
    spec = named("p3d_b_50", width=2, frames=4, crop=32, bottleneck_ratio=ratio)
    block = blueprint(spec).stages[2][0]  # conv4_x: 16k = 32 out
    assert block.convs[0].cout == inner == int(ratio * 32)
    assert cost(spec).params == sum(p.numel() for p in build(spec).parameters())


def test_default_ratio_is_resnets_quarter():
    assert named("p3d_b_50").bottleneck_ratio == 0.25
    assert cost(named("p3d_b_50")).params == cost(named("p3d_b_50", bottleneck_ratio=0.25)).params


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"bottleneck_ratio": 0.5}, "bottleneck_ratio = 0.5 needs block='bottleneck'"),
        (
            {"block": "bottleneck", "bottleneck_ratio": 0},
            "bottleneck_ratio: Input should be greater than 0 \\(got 0\\)",
        ),
        (
            {"block": "bottleneck", "bottleneck_ratio": "2"},
            "bottleneck_ratio: Input should be a valid number \\(got '2'\\)",
        ),
        ({"convs": ("3d", "x3d", "3d", "3d", "3d")}, "'x3d' needs block='bottleneck'"),
        ({"temporal_stride": "never"}, "temporal_stride: Input should be 'all', 'conv' or 'none'"),
    ],
)
def test_bad_x3d_fields_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        ArchSpec.from_dict(fields)
