"""Resolve an ArchSpec into its blocks: every rule of the papers is applied here, once.

`blueprint(spec)` decides, for every convolution slot, its kind, channels, kernel, stride and the
intermediate width of a factorised convolution. What a kind is made of is declared once in
`spaces.kinds`; the builder (`spaces.builder`) turns each slot's declared layers into modules and the
cost model (`spaces.cost`) into numbers, and a property test checks that they agree.

Rules (with the paper they come from):
- conv1 is t×d×d, stride 1×s×s (s = 2), d by crop: 5 at 56, 7 at 112, 11 at 224 (Res3D §3.4).
- conv3_1, conv4_1, conv5_1 halve space, and halve time while it is still > 1 (Res3D §3.2; SR18 at
  4 frames gets 1×2×2 at conv5_1). `temporal_stride="conv"` only halves time in stages whose
  convolution is temporal (R(2+1)D §4.1); `"all"` halves it in 2D stages too (Res3D Table 13);
  `"none"` never halves it (X3D).
- The shortcut is a 1×1×1 convolution + BN whenever the shape changes (Res3D §3.2).
- Bottleneck blocks put the stride on their first 1×1×1 convolution, as the P3D release does, except
  around a kind that `takes_block_stride` (X3D's channel-wise conv, as SlowFast's X3D). Their inner
  width is int(γb × output width), γb = `bottleneck_ratio` (1/4: ResNet's cout // 4; X3D: 2.25).
- `2plus1d-tv` (torchvision's R(2+1)D): every factorised conv of a block takes M_i from the block's
  input and output channels, so conv3_1's second conv has 230 mid channels where the paper's
  formula on its own 128 → 128 gives 288 (torchvision r2plus1d_18: 31.5M parameters, not 33.4M).
- P3D-mixed cycles A → B → C over the blocks of the whole network (P3D Figure 4).
- `stem_pool` (2D ResNets, P3D) max-pools 3×3/2 in space and, with more than one frame, 2/2 in
  time, as the P3D release's (2, 3, 3) pool after conv1.
"""

from __future__ import annotations

from dataclasses import dataclass

from spaces.arch import ArchSpec
from spaces.kinds import FACTORISED_KINDS, KINDS, MIXED, TEMPORAL_KINDS, Conv

__all__ = ["FACTORISED_KINDS", "Block", "Blueprint", "Conv", "blueprint", "factorised_mid", "make_conv"]


@dataclass(frozen=True)
class Block:
    stage: int  # 2 … 5 (conv2_x … conv5_x)
    index: int  # 1-based position in the stage
    type: str  # basic | bottleneck
    convs: tuple[Conv, ...]
    shortcut: Conv | None  # 1×1×1 projection when the shape changes, else identity


@dataclass(frozen=True)
class Blueprint:
    spec: ArchSpec
    stem: Conv
    stages: tuple[tuple[Block, ...], ...]  # conv2_x … conv5_x
    features: int  # channels into the fc layer


def factorised_mid(kind: str, cin: int, cout: int, t: int, d: int) -> int:
    """Intermediate channels that give a factorised conv about the parameters of a t×d×d one
    (the kind's own rule, spaces.kinds: R(2+1)D §3.5 or Res3D §3.5)."""
    rule = KINDS[kind].mid if kind in KINDS else None
    if rule is None:
        raise ValueError(f"factorised_mid: kind must be one of {FACTORISED_KINDS}, got {kind!r}")
    return rule(cin, cout, t, d)


def make_conv(kind: str, cin: int, cout: int, *, t: int, d: int, stride=(1, 1), mid: int | None = None) -> Conv:
    """A slot of `kind`; temporal extent collapses to 1 for 2D kinds, mid is solved if factorised."""
    declared = KINDS[kind]
    if not declared.temporal:
        t = 1
    if declared.mid is not None and mid is None:
        mid = declared.mid(cin, cout, t, d)
    return Conv(kind, cin, cout, t, d, tuple(stride), mid or 0)


def stem_pool_geometry(frames: int) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    """(kernel, stride, padding) of the max-pool after conv1 for a clip of `frames` frames."""
    if frames > 1:
        return (2, 3, 3), (2, 2, 2), (0, 1, 1)
    return (1, 3, 3), (1, 2, 2), (0, 1, 1)


def blueprint(spec: ArchSpec) -> Blueprint:
    widths = spec.stage_widths
    stem_kind = spec.convs[0]
    folds_time = KINDS[stem_kind].folds_time
    stem_cin = 3 * spec.frames if folds_time else 3
    stem = make_conv(
        stem_kind, stem_cin, widths[0], t=3, d=spec.stem_kernel_size, stride=(1, spec.stem_stride), mid=spec.stem_mid
    )
    frames = 1 if folds_time else spec.frames
    if spec.stem_pool and frames > 1:
        frames = (frames - 2) // 2 + 1
    cin = widths[0]
    stages: list[tuple[Block, ...]] = []
    global_index = 0  # P3D-mixed cycles over all blocks of the network
    for stage, (kind, n_blocks, cout) in enumerate(zip(spec.convs[1:], spec.blocks, widths[1:]), start=2):
        halves_time = (
            frames > 1
            and stage > 2
            and (spec.temporal_stride == "all" or (spec.temporal_stride == "conv" and kind in TEMPORAL_KINDS))
        )
        stride = (2 if halves_time else 1, 1 if stage == 2 else 2)
        if halves_time:
            frames = (frames + 1) // 2
        blocks = []
        for index in range(1, n_blocks + 1):
            block_kind = MIXED[kind][global_index % len(MIXED[kind])] if kind in MIXED else kind
            blocks.append(_block(spec, stage, index, block_kind, cin, cout, stride))
            cin, stride = cout, (1, 1)
            global_index += 1
        stages.append(tuple(blocks))
    return Blueprint(spec, stem, tuple(stages), cin)


def _block(spec: ArchSpec, stage: int, index: int, kind: str, cin: int, cout: int, stride) -> Block:
    declared = KINDS[kind]
    t = 3 if declared.temporal else 1
    # γb (X3D §3.1): a bottleneck's inner width is int(γb × its output width), as SlowFast's X3D;
    # the default 1/4 is ResNet's cout // 4
    planes = cout if spec.block == "basic" else max(1, int(spec.bottleneck_ratio * cout))
    # torchvision's BasicBlock / Bottleneck compute one midplanes from (inplanes, planes) for the block.
    mid = declared.mid(cin, planes, t, 3) if declared.mid_from_block else None
    if spec.block == "basic":
        convs = (
            make_conv(kind, cin, cout, t=t, d=3, stride=stride, mid=mid),
            make_conv(kind, cout, cout, t=t, d=3, mid=mid),
        )
    else:
        middle = stride if declared.takes_block_stride else (1, 1)
        convs = (
            make_conv("3d", cin, planes, t=1, d=1, stride=(1, 1) if declared.takes_block_stride else stride),
            make_conv(kind, planes, planes, t=t, d=3, stride=middle, mid=mid),
            make_conv("3d", planes, cout, t=1, d=1),
        )
    shortcut = None
    if stride != (1, 1) or cin != cout:
        shortcut = make_conv("3d", cin, cout, t=1, d=1, stride=stride)
    return Block(stage, index, spec.block, convs, shortcut)
