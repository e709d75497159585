"""Convolution kinds, each declared once: where it may go and the layers it is made of.

A kind stands in for one t×d×d convolution of the 3D ResNet: a *slot* (`Conv`, resolved by
`spaces.blueprint`: kind, channels, kernel, stride, intermediate width). Its declaration in `KINDS`
says where the kind may go (conv1, a stage, only inside a bottleneck), whether it convolves time,
how its intermediate width is solved, and — `Kind.layers(slot)` — its layers with their shapes::

    Unit(conv, bn, relu, src)   a conv → BN [→ ReLU] reading the slot's input (src = -1) or the
                                output of an earlier unit (src = i)
    Layers(units, out, fold)    the slot's output: one unit's, or two units' summed; `fold` first
                                reshapes (B, C, T, H, W) → (B, C·T, 1, H, W) (R2D conv1)

`spaces.builder` makes the nn.Module of a slot from its units (the module names are the units'
`path`s, so they are the state-dict keys), `spaces.cost` walks the same units to count params,
MACs and activations, `spaces.tv_weights` reads the paths. So cost() == build holds by
construction, and a new kind is one entry here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, NamedTuple


class Conv(NamedTuple):
    """One convolution slot: a kind standing in for a t×d×d convolution from cin to cout (a
    NamedTuple: hashed and built in C, and a P3D-199 blueprint makes ~600 of them)."""

    kind: str  # a key of KINDS
    cin: int
    cout: int
    t: int  # temporal kernel (1 for a 2D slot)
    d: int  # spatial kernel
    stride: tuple[int, int] = (1, 1)  # (temporal, spatial)
    mid: int = 0  # intermediate channels of a factorised (2+1)D / 2.5D slot

    @property
    def label(self) -> str:
        """Paper-style text, e.g. '3×3×3, 64' or '1×3×3, 144 + 3×1×1, 64'."""
        return KINDS[self.kind].label(self)


class ConvOp(NamedTuple):
    path: str  # module path inside the slot's module: the state-dict key prefix ("0", "spatial", "conv.0")
    name: str  # suffix of the cost layer's name ("" = the slot's own name, ".spatial", …)
    cin: int
    cout: int
    kernel: tuple[int, int, int]  # (t, h, w); same padding k // 2
    stride: tuple[int, int, int] = (1, 1, 1)
    groups: int = 1  # cin = groups: channel-wise (X3D)


class Unit(NamedTuple):
    """conv → BatchNorm(conv.cout) [→ ReLU]."""

    conv: ConvOp
    bn_path: str
    bn_name: str
    relu: bool = False  # in place: a BN output is not saved for the backward
    src: int = -1  # -1: the slot's input; i: the output of unit i


class Layers(NamedTuple):
    units: tuple[Unit, ...]
    out: tuple[int, ...]  # the unit whose output is the slot's, or two units whose outputs are summed
    fold: bool = False  # (B, C, T, H, W) → (B, C·T, 1, H, W) before the units (R2D conv1)

    @property
    def ends_with_bn(self) -> bool:
        """The slot's output is a BN output: a ReLU after it may run in place (issue 12; a P3D
        slot ends with a ReLU whose output autograd keeps, or with a sum of two)."""
        return len(self.out) == 1 and not self.units[self.out[0]].relu


@dataclass(frozen=True)
class Kind:
    name: str
    layers: Callable[[Conv], Layers]
    label: Callable[[Conv], str]
    stem: bool = False  # may be conv1
    stage: bool = True  # may be conv2_x … conv5_x
    temporal: bool = True  # convolves time (t = 3; halves time at conv3_1 … with temporal_stride "conv")
    bottleneck: bool = False  # only as the middle conv of a bottleneck block
    takes_block_stride: bool = False  # in a bottleneck, the stride is this slot's, not the first 1×1×1's
    mid: Callable[[int, int, int, int], int] | None = None  # (cin, cout, t, d) → intermediate width
    mid_from_block: bool = False  # mid from the block's (inplanes, planes), as torchvision does
    folds_time: bool = False  # conv1 sees the L frames as 3L channels; the network then has one frame


# ---------------------------------------------------------------------------------------- layers
def _conv_bn(slot: Conv, groups: int = 1) -> Layers:
    """3d (t×d×d), 2d (1×d×d; it may still stride time, Res3D Table 13), channel-wise (X3D)."""
    ts, ss = slot.stride
    conv = ConvOp("0", "", slot.cin, slot.cout, (slot.t, slot.d, slot.d), (ts, ss, ss), groups)
    return Layers((Unit(conv, "1", ".bn"),), (0,))


def _fold(slot: Conv) -> Layers:
    """R2D conv1 (R(2+1)D §3.1): the L frames become 3L channels of one 2D image."""
    ss = slot.stride[1]
    conv = ConvOp("conv.0", "", slot.cin, slot.cout, (1, slot.d, slot.d), (1, ss, ss))
    return Layers((Unit(conv, "conv.1", ".bn"),), (0,), fold=True)


def _factorised(slot: Conv) -> Layers:
    """(2+1)D (R(2+1)D §3.5) and 2.5D (Res3D §3.5): 1×d×d to `mid` channels, BN, ReLU, then t×1×1, BN."""
    ts, ss = slot.stride
    spatial = ConvOp("spatial", ".spatial", slot.cin, slot.mid, (1, slot.d, slot.d), (1, ss, ss))
    temporal = ConvOp("temporal", ".temporal", slot.mid, slot.cout, (slot.t, 1, 1), (ts, 1, 1))
    return Layers((Unit(spatial, "bn_spatial", ".bn_spatial", relu=True), Unit(temporal, "bn", ".bn", src=0)), (1,))


def _p3d(variant: str) -> Callable[[Conv], Layers]:
    """P3D §3.1: S = 1×d×d and T = t×1×1, each BN + ReLU. A: T(S(x)) (Eq. 3); B: S(x) + T(x)
    (Eq. 4); C: S(x) + T(S(x)) (Eq. 5)."""

    def layers(slot: Conv) -> Layers:
        if slot.stride != (1, 1):
            raise ValueError(f"P3D slots do not stride (the bottleneck's 1×1×1 does), got stride {slot.stride}")
        t_src, t_cin = (-1, slot.cin) if variant == "b" else (0, slot.cout)
        s = ConvOp("spatial", ".spatial", slot.cin, slot.cout, (1, slot.d, slot.d))
        t = ConvOp("temporal", ".temporal", t_cin, slot.cout, (slot.t, 1, 1))
        units = (
            Unit(s, "bn_spatial", ".bn_spatial", relu=True),
            Unit(t, "bn_temporal", ".bn_temporal", relu=True, src=t_src),
        )
        return Layers(units, (1,) if variant == "a" else (0, 1))

    return layers


def _channelwise(slot: Conv) -> Layers:
    if slot.cin != slot.cout:
        raise ValueError(f"a channel-wise conv keeps its channels, got {slot.cin} → {slot.cout}")
    return _conv_bn(slot, groups=slot.cin)


# ------------------------------------------------------------------------- intermediate widths
def r2plus1d_mid(cin: int, cout: int, t: int, d: int) -> int:
    """R(2+1)D §3.5: M_i = ⌊t d² N_{i−1} N_i / (d² N_{i−1} + t N_i)⌋ (about the t×d×d conv's parameters)."""
    return max(1, (t * d * d * cin * cout) // (d * d * cin + t * cout))


def res3d_25d_mid(cin: int, cout: int, t: int, d: int) -> int:
    """Res3D §3.5 (2.5D, t = 3): i = ⌈3 m n d² / (n d² + 3 m)⌉ with n in and m out channels."""
    return max(1, math.ceil(t * d * d * cin * cout / (d * d * cin + t * cout)))


# ---------------------------------------------------------------------------------------- labels
def _kernel_label(s: Conv) -> str:
    return f"{s.t}×{s.d}×{s.d}, {s.cout}"


def _factorised_label(s: Conv) -> str:
    return f"1×{s.d}×{s.d}, {s.mid} + {s.t}×1×1, {s.cout}"


def _p3d_label(s: Conv) -> str:
    return f"P3D-{s.kind[-1].upper()} 1×{s.d}×{s.d} & {s.t}×1×1, {s.cout}"


# ------------------------------------------------------------------------------------ the kinds
_FACTORISED = dict(layers=_factorised, label=_factorised_label, stem=True)
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("3d", _conv_bn, _kernel_label, stem=True),
        Kind("2d", _conv_bn, _kernel_label, stem=True, temporal=False),
        Kind("2plus1d", **_FACTORISED, mid=r2plus1d_mid),
        # torchvision's R(2+1)D: every conv of a block takes M_i from the block's (inplanes, planes), so
        # conv3_1's second conv has 230 mid channels where the formula on its own 128 → 128 gives 288
        Kind("2plus1d-tv", **_FACTORISED, mid=r2plus1d_mid, mid_from_block=True),
        Kind("2.5d", **_FACTORISED, mid=res3d_25d_mid),
        Kind(
            "fold",
            _fold,
            lambda s: f"{s.cin}ch (3×L) 1×{s.d}×{s.d}, {s.cout}",
            stem=True,
            stage=False,
            temporal=False,
            folds_time=True,
        ),
        Kind("p3d-a", _p3d("a"), _p3d_label, bottleneck=True),
        Kind("p3d-b", _p3d("b"), _p3d_label, bottleneck=True),
        Kind("p3d-c", _p3d("c"), _p3d_label, bottleneck=True),
        # X3D §3.1 (SlowFast's X3DTransform, CHANNELWISE_3x3x3): the middle of an inverted bottleneck,
        # 1×1×1 expand to γb × width → channel-wise t×d×d (groups = channels) with the block's
        # stride → BN → 1×1×1 project. X3D's squeeze-excitation and swish are left out (ReLU here).
        Kind(
            "x3d",
            _channelwise,
            lambda s: f"{s.t}×{s.d}×{s.d} channel-wise, {s.cout}",
            bottleneck=True,
            takes_block_stride=True,
        ),
    )
}
# Stage kinds that are not one kind but a rule over the blocks of the whole network.
MIXED: dict[str, tuple[str, ...]] = {"p3d-mixed": ("p3d-a", "p3d-b", "p3d-c")}  # P3D Figure 4: A → B → C

STEM_KINDS = tuple(n for n, k in KINDS.items() if k.stem)
STAGE_KINDS = tuple(n for n, k in KINDS.items() if k.stage) + tuple(MIXED)
BOTTLENECK_KINDS = tuple(n for n, k in KINDS.items() if k.bottleneck) + tuple(
    m for m, parts in MIXED.items() if all(KINDS[p].bottleneck for p in parts)
)
TEMPORAL_KINDS = tuple(n for n, k in KINDS.items() if k.temporal) + tuple(
    m for m, parts in MIXED.items() if all(KINDS[p].temporal for p in parts)
)
FACTORISED_KINDS = tuple(n for n, k in KINDS.items() if k.mid is not None)


@lru_cache(maxsize=4096)
def layers(slot: Conv) -> Layers:
    """The layers of `slot` (cached: a network repeats its slots, and width solving re-walks them)."""
    return KINDS[slot.kind].layers(slot)
