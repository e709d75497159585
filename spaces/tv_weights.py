"""torchvision's video ResNets ⇄ starch specs: key names of the state dicts, both ways.

torchvision's `r3d_18`, `mc3_18` and `r2plus1d_18` (torchvision/models/video/resnet.py) are starch's
`r3d_18`, `mc3` and `r2plus1d_18_tv` tensor for tensor, in the same order, under other names:

    starch                              torchvision
    stem.0.0 / stem.0.1                 stem.0 / stem.1                       (3×7×7 conv, BN)
    stem.0.{spatial,bn_spatial,         stem.{0,1,3,4}                        (R(2+1)D stem; 2 is a ReLU)
            temporal,bn}
    layers.I.J.convs.C.0 / .1           layerI+1.J.convC+1.0 / .1             (conv, BN)
    layers.I.J.convs.C.{spatial,        layerI+1.J.convC+1.0.{0,1,3} / .1     (Conv2Plus1D, then the BN)
            bn_spatial,temporal,bn}
    layers.I.J.shortcut.0 / .1          layerI+1.J.downsample.0 / .1
    fc                                  fc

The mapping is derived from the blueprint, so it needs neither torch nor torchvision: state dicts
are plain mappings here (tensors pass through untouched), and the expected shape of every tensor is
computed from the spec, so a wrong spec is reported by name and shape before any model is built.
"""

from __future__ import annotations

from typing import Any, Mapping

from spaces.arch import ArchSpec
from spaces.blueprint import FACTORISED_KINDS, Conv, blueprint
from spaces.kinds import layers as declared_layers

# torchvision builder → starch named network (spaces.zoo) with the same tensors.
TORCHVISION_MODELS = {"r3d_18": "r3d_18", "mc3_18": "mc3", "r2plus1d_18": "r2plus1d_18_tv"}
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def check_convertible(spec: ArchSpec) -> None:
    """Raise unless torchvision's VideoResNet class can express `spec` (its blocks, stems and strides)."""
    problems = []
    if spec.block != "basic":
        problems.append(
            f"block={spec.block!r} (torchvision's video Bottleneck strides in its 3×3 conv; starch's in the 1×1×1)"
        )
    stem = spec.convs[0]
    if stem == "3d":
        if spec.stem_kernel_size != 7:
            problems.append(
                f"a 3D conv1 of {spec.stem_kernel_size}×{spec.stem_kernel_size} (torchvision's BasicStem is 3×7×7)"
            )
    elif stem in ("2plus1d", "2plus1d-tv"):
        if spec.stem_mid != 45 or spec.stem_kernel_size != 7:
            problems.append(
                f"a (2+1)D conv1 with stem_mid={spec.stem_mid}, kernel {spec.stem_kernel_size} "
                "(torchvision's R2Plus1dStem is 1×7×7 to 45 channels, then 3×1×1)"
            )
    else:
        problems.append(f"conv1 kind {stem!r} (torchvision has a 3d or a 2plus1d-tv stem)")
    for i, kind in enumerate(spec.convs[1:], start=2):
        if kind not in ("3d", "2d", "2plus1d-tv"):
            hint = " (use 2plus1d-tv: torchvision's mid-width)" if kind == "2plus1d" else ""
            problems.append(f"conv{i}_x kind {kind!r}{hint}")
    if "2d" in spec.convs[2:] and spec.temporal_stride != "conv":
        problems.append("temporal_stride='all' (torchvision's Conv3DNoTemporal never strides time)")
    if spec.stem_stride != 2 or spec.stem_pool:
        problems.append(f"stem_stride={spec.stem_stride}, stem_pool={spec.stem_pool} (torchvision: 2, no pool)")
    if problems:
        raise ValueError(
            f"{spec.name}: torchvision's video ResNet cannot express "
            + "; ".join(problems)
            + f"; convertible named networks: {', '.join(TORCHVISION_MODELS.values())}"
        )


def torchvision_name(spec: ArchSpec) -> str | None:
    """The torchvision builder whose model has exactly `spec`'s tensors, or None."""
    from spaces.zoo import named

    for tv, ours in TORCHVISION_MODELS.items():
        ref = named(ours)
        if all(
            getattr(spec, f) == getattr(ref, f)
            for f in (
                "convs",
                "blocks",
                "block",
                "width",
                "temporal_stride",
                "stem_kernel_size",
                "stem_mid",
                "stem_stride",
                "stem_pool",
            )
        ):
            return tv
    return None


def _slot_entries(ours: str, theirs: str, slot: Conv, *, stem: bool = False) -> list[tuple[str, str, tuple]]:
    """(starch prefix, torchvision prefix, shape) of every conv and BN in one slot, in order.

    The starch side is the slot's declared layers (spaces.kinds); torchvision's names are its own:
    Conv3DSimple / Conv3DNoTemporal = conv at .0, the block's BN at .1; Conv2Plus1D = Sequential(conv
    1×d×d, BN, ReLU, conv t×1×1), the block's BN following at .1 (in a block) — the stem is one flat
    Sequential(conv, BN, ReLU, conv, BN, ReLU)."""
    if slot.kind in FACTORISED_KINDS:
        inner = ["0", "1", "3", "4"] if stem else ["0.0", "0.1", "0.3", "1"]
    else:
        inner = ["0", "1"]
    ours_layers = []
    for unit in declared_layers(slot).units:
        c = unit.conv
        ours_layers.append((c.path, (c.cout, c.cin // c.groups, *c.kernel)))
        ours_layers.append((unit.bn_path, (c.cout,)))
    if len(ours_layers) != len(inner):
        raise ValueError(f"torchvision has no {slot.kind!r} convolution")
    return [(f"{ours}.{path}", f"{theirs}.{tv}", shape) for (path, shape), tv in zip(ours_layers, inner)]


def key_table(spec: ArchSpec) -> list[tuple[str, str, tuple[int, ...]]]:
    """(starch key, torchvision key, shape) of every state-dict entry, in the modules' order."""
    check_convertible(spec)
    plan = blueprint(spec)
    modules = _slot_entries("stem.0", "stem", plan.stem, stem=True)
    for i, stage in enumerate(plan.stages):
        for j, block in enumerate(stage):
            for c, slot in enumerate(block.convs):
                modules += _slot_entries(f"layers.{i}.{j}.convs.{c}", f"layer{i + 1}.{j}.conv{c + 1}", slot)
            if block.shortcut is not None:
                modules += _slot_entries(f"layers.{i}.{j}.shortcut", f"layer{i + 1}.{j}.downsample", block.shortcut)
    rows = []
    for ours, theirs, shape in modules:
        if len(shape) > 1:  # a convolution (no bias: every conv is followed by BN)
            rows.append((f"{ours}.weight", f"{theirs}.weight", shape))
        else:
            rows += [(f"{ours}.{b}", f"{theirs}.{b}", () if b == "num_batches_tracked" else shape) for b in _BN]
    rows += [("fc.weight", "fc.weight", (spec.num_classes, plan.features)), ("fc.bias", "fc.bias", (spec.num_classes,))]
    return rows


def _convert(state: Mapping[str, Any], rows, src: int, dst: int, what: str) -> dict[str, Any]:
    expected = {r[src] for r in rows}
    missing = [r[src] for r in rows if r[src] not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{what}: {len(missing)} missing key(s) {missing[:5]}, {len(unexpected)} unexpected "
            f"key(s) {unexpected[:5]} ({len(rows)} expected, e.g. {rows[0][src]!r})"
        )
    out = {}
    for row in rows:
        value = state[row[src]]
        shape = tuple(getattr(value, "shape", ()))
        if shape != row[2]:
            raise ValueError(f"{what}: {row[src]} has shape {list(shape)}, the spec needs {list(row[2])}")
        out[row[dst]] = value
    return out


def from_torchvision(state: Mapping[str, Any], spec: ArchSpec) -> dict[str, Any]:
    """A torchvision video-ResNet state dict → the state dict of `spaces.build(spec)`."""
    return _convert(state, key_table(spec), 1, 0, f"torchvision state dict for {spec.name}")


def to_torchvision(state: Mapping[str, Any], spec: ArchSpec) -> dict[str, Any]:
    """`spaces.build(spec).state_dict()` → torchvision's key names, in torchvision's order."""
    return _convert(state, key_table(spec), 0, 1, f"starch state dict for {spec.name}")


def is_torchvision_state(state: Mapping[str, Any]) -> bool:
    """torchvision video ResNets name their first tensor stem.0.weight; starch's is stem.0.0 / stem.0.spatial."""
    return "stem.0.weight" in state and "layer1.0.conv1.1.weight" in state
