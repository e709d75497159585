"""What a network costs, computed from shapes alone, without building it.

`cost(spec)` walks the blueprint and expands every slot into the convolutions and BatchNorms its
kind declares (`spaces.kinds`, the declaration the builder makes the module from), tracking the
(C, T, H, W) shape. Conventions:

- params: conv weights (no bias: every conv is followed by BN) + BN γ, β + fc weight and bias —
  exactly `sum(p.numel() for p in build(spec).parameters())`.
- flops: multiply-accumulates per clip of every conv and the fc layer, the papers' convention and
  torchvision's "GFLOPS" metadata (its r3d_18 at 16×112×112 is 40.70). `torch.utils.flop_counter`
  counts 2 per MAC, so it reports exactly 2 × flops.
- block_flops: MACs of the convolutions inside residual blocks only (no conv1, shortcuts or fc):
  what the Res3D tables' FLOPs match within ~5 %.
- activations: elements of every conv and BN output for one clip — the tensors autograd keeps for
  the backward pass; `activation_bytes(batch, bytes_per_element)` scales it to a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from spaces.arch import ArchSpec
from spaces.blueprint import Block, Conv, blueprint, stem_pool_geometry
from spaces.kinds import layers as declared_layers

Shape = tuple[int, int, int, int]  # (C, T, H, W)


class Layer(NamedTuple):
    """One conv, BN or fc layer with its shapes and costs (a NamedTuple: a P3D-199 walk makes
    ~800 of them, and a tuple is built 2–3× faster than a frozen dataclass)."""

    name: str  # e.g. conv3_1.a.spatial, conv3_1.shortcut, fc
    op: str  # conv | bn | fc
    in_shape: Shape
    out_shape: Shape
    kernel: tuple[int, int, int] = (1, 1, 1)
    stride: tuple[int, int, int] = (1, 1, 1)
    params: int = 0
    macs: int = 0
    in_block: bool = False  # a residual-branch conv of conv2_x … conv5_x (not the shortcut)
    relu: bool = False  # a BN whose slot applies a ReLU to it (inside the slot, as P3D and (2+1)D do)


@dataclass(frozen=True)
class Cost:
    params: int
    flops: int  # MACs per clip, all conv + fc layers
    block_flops: int  # MACs of the residual-branch convs only (the Res3D tables' convention)
    activations: int  # conv + BN output elements per clip
    layers: tuple[Layer, ...] = field(repr=False)

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6

    @property
    def megabytes(self) -> float:
        """Size of the float32 weights in MB (10^6 bytes), as P3D Table 1 reports model sizes."""
        return self.params * 4 / 1e6

    def activation_bytes(self, batch: int = 1, bytes_per_element: int = 4) -> int:
        return self.activations * batch * bytes_per_element

    def table(self) -> list[dict]:
        """Per-layer breakdown as plain dicts (pandas.DataFrame(cost.table()) makes it a table)."""
        return [
            {
                "name": l.name,
                "op": l.op,
                "in": "×".join(map(str, l.in_shape)),
                "out": "×".join(map(str, l.out_shape)),
                "kernel": "×".join(map(str, l.kernel)),
                "stride": "×".join(map(str, l.stride)),
                "params": l.params,
                "macs": l.macs,
            }
            for l in self.layers
        ]


@lru_cache(maxsize=4096)
def _walk_plan(slot: Conv):
    """The slot's declared layers (spaces.kinds) as flat tuples for the walk: (conv name, BN name,
    cout, kernel, stride, weights, relu, src) per unit, the output unit, fold."""
    declared = declared_layers(slot)
    units = tuple(
        (
            u.conv.name,
            u.bn_name,
            u.conv.cout,
            u.conv.kernel,
            u.conv.stride,
            u.conv.cout * (u.conv.cin // u.conv.groups) * u.conv.kernel[0] * u.conv.kernel[1] * u.conv.kernel[2],
            u.relu,
            u.src,
        )
        for u in declared.units
    )
    return units, declared.out[0], declared.fold


def _out(size: int, kernel: int, stride: int, pad: int | None = None) -> int:
    pad = kernel // 2 if pad is None else pad  # convolutions use same padding
    return (size + 2 * pad - kernel) // stride + 1


class _Walker:
    """Accumulates layers while following the shape through the network."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []

    def slot(self, name: str, slot: Conv, shape: Shape, in_block: bool = False) -> Shape:
        """Expand one slot into the layers its kind declares (spaces.kinds), following the shape."""
        units, out_index, fold = _walk_plan(slot)
        if fold:
            c, frames, h, w = shape
            shape = (c * frames, 1, h, w)
        add = self.layers.append
        outs: list[Shape] = []
        for conv_name, bn_name, cout, kernel, stride, weights, relu, src in units:
            c, t, h, w = in_shape = shape if src < 0 else outs[src]
            kt, kh, kw = kernel
            st, sh, sw = stride
            # same padding k // 2: (n + 2 (k // 2) − k) // s + 1
            out = (cout, (t - kt % 2) // st + 1, (h - kh % 2) // sh + 1, (w - kw % 2) // sw + 1)
            macs = weights * out[1] * out[2] * out[3]
            add(Layer(name + conv_name, "conv", in_shape, out, kernel, stride, weights, macs, in_block))
            add(Layer(name + bn_name, "bn", out, out, (1, 1, 1), (1, 1, 1), 2 * cout, 0, False, relu))
            outs.append(out)
        return outs[out_index]

    def block(self, name: str, block: Block, shape: Shape) -> Shape:
        out = shape
        for part, slot in zip("abc", block.convs):
            out = self.slot(f"{name}.{part}", slot, out, in_block=True)
        if block.shortcut is not None:
            self.slot(f"{name}.shortcut", block.shortcut, shape)
        return out


def cost(spec: ArchSpec) -> Cost:
    plan = blueprint(spec)
    walk = _Walker()
    shape = walk.slot("conv1", plan.stem, (3, spec.frames, spec.crop, spec.crop))
    if spec.stem_pool:
        kernel, stride, pad = stem_pool_geometry(shape[1])
        shape = (shape[0],) + tuple(_out(n, k, s, p) for n, k, s, p in zip(shape[1:], kernel, stride, pad))
    for stage in plan.stages:
        for block in stage:
            shape = walk.block(f"conv{block.stage}_{block.index}", block, shape)
    walk.layers.append(
        Layer(
            "fc",
            "fc",
            (plan.features, 1, 1, 1),
            (spec.num_classes, 1, 1, 1),
            params=plan.features * spec.num_classes + spec.num_classes,
            macs=plan.features * spec.num_classes,
        )
    )
    layers = tuple(walk.layers)
    return Cost(
        params=sum(l.params for l in layers),
        flops=sum(l.macs for l in layers),
        block_flops=sum(l.macs for l in layers if l.in_block),
        activations=sum(
            l.out_shape[0] * l.out_shape[1] * l.out_shape[2] * l.out_shape[3] for l in layers if l.op != "fc"
        ),
        layers=layers,
    )
