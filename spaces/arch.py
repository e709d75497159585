"""ArchSpec: a frozen, JSON-serialisable description of one video ResNet.

The spec is pure data. `spaces.build(spec)` turns it into an `nn.Module`, `spaces.cost(spec)`
into numbers; neither is stored here. `to_dict()` gives exactly what a Ray Tune trial's config
carries, and `ArchSpec.from_dict(d)` reads it back (unknown keys are errors).

Stage layout (Res3D Table 2, R(2+1)D Table 1):

    conv1 ─► conv2_x ─► conv3_x ─► conv4_x ─► conv5_x ─► global avg pool ─► fc
    width  k      k          2k         4k         8k        (bottleneck stages output 4× that)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from spaces.kinds import BOTTLENECK_KINDS, STAGE_KINDS, STEM_KINDS, TEMPORAL_KINDS  # noqa: F401 (re-exported)

# Convolution kinds (3d, 2d, fold, 2plus1d, 2plus1d-tv, 2.5d, p3d-a/b/c, p3d-mixed, x3d): each is
# declared once, with its layers, in spaces.kinds; STEM_KINDS, STAGE_KINDS, … are derived there.
BLOCK_TYPES = ("basic", "bottleneck")
# Where time is halved at conv3_1, conv4_1, conv5_1 (while it is still > 1):
#   "all"  – in every stage, 2D ones included (Res3D Table 13 output sizes);
#   "conv" – only in stages whose convolution is temporal (R(2+1)D §4.1, torchvision mc3_18);
#   "none" – never: every stage keeps the clip's frames (X3D §3.1, Table 1).
TEMPORAL_STRIDES = ("all", "conv", "none")

# Res3D §3.4: conv1 kernels chosen so the receptive field matches across resolutions.
STEM_KERNEL_BY_CROP = {56: 5, 112: 7, 224: 11}


@dataclass(frozen=True)
class ArchSpec:
    """One network of the search space. All fields are plain JSON types."""

    convs: tuple[str, ...] = ("3d",) * 5  # conv1, conv2_x … conv5_x kinds
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # residual blocks in conv2_x … conv5_x
    block: str = "basic"  # basic (2 convs) or bottleneck (1×1×1, conv, 1×1×1 ×4)
    # γb of a bottleneck block (X3D §3.1): its inner width over its output width; ResNet's 1/4, X3D's 2.25
    bottleneck_ratio: float = 0.25
    width: int = 64  # k: stage widths k, k, 2k, 4k, 8k
    frames: int = 8  # clip length L
    sampling_rate: int = 1  # take every s-th frame (does not change the network)
    crop: int = 112  # input H = W
    num_classes: int = 101
    temporal_stride: str = "conv"  # see TEMPORAL_STRIDES
    stem_kernel: int | None = None  # spatial d of conv1; None = by crop (Res3D §3.4), else 7
    stem_stride: int = 2  # spatial stride of conv1 (Res3D Table 5's FLOPs need 2 at every crop)
    stem_pool: bool = False  # 3×3/2 max-pool after conv1 (2D ResNet / P3D); video ResNets have none
    stem_mid: int | None = None  # intermediate channels of a (2+1)D conv1; None = the M_i formula
    name: str = "custom"  # family label for tables and plots (R3D, MC3, P3D-B, D26, …)

    def __post_init__(self) -> None:
        # Accept lists (JSON) and normalise to tuples so the spec stays hashable.
        object.__setattr__(self, "convs", tuple(self.convs))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        _validate(self)

    # ------------------------------------------------------------------ derived facts
    @property
    def stem_kernel_size(self) -> int:
        if self.stem_kernel is not None:
            return self.stem_kernel
        return STEM_KERNEL_BY_CROP.get(self.crop, 7)

    @property
    def stage_widths(self) -> tuple[int, ...]:
        """Output channels of conv1 … conv5_x (Res3D §3.5: k, k, 2k, 4k, 8k)."""
        k = self.width
        widths = (k, k, 2 * k, 4 * k, 8 * k)
        if self.block == "bottleneck":
            return (k,) + tuple(4 * w for w in widths[1:])
        return widths

    @property
    def depth(self) -> int:
        """Layer count in the ResNet convention (conv1 + convs in blocks + fc)."""
        per_block = 3 if self.block == "bottleneck" else 2
        return 2 + per_block * sum(self.blocks)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["convs"] = list(self.convs)
        d["blocks"] = list(self.blocks)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArchSpec":
        if not isinstance(data, dict):
            raise ValueError(f"ArchSpec.from_dict needs a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ArchSpec field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "ArchSpec":
        return ArchSpec.from_dict({**self.to_dict(), **changes})


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"ArchSpec.{name} must be an integer >= {minimum}, got {value!r}")


def _validate(spec: ArchSpec) -> None:
    if len(spec.convs) != 5:
        raise ValueError(
            f"ArchSpec.convs needs 5 kinds (conv1, conv2_x … conv5_x), got {len(spec.convs)}: {spec.convs!r}"
        )
    if spec.convs[0] not in STEM_KINDS:
        raise ValueError(f"ArchSpec.convs[0] (conv1) = {spec.convs[0]!r} is not valid; valid: {STEM_KINDS}")
    for i, kind in enumerate(spec.convs[1:], start=2):
        if kind not in STAGE_KINDS:
            raise ValueError(f"ArchSpec.convs[{i - 1}] (conv{i}_x) = {kind!r} is not valid; valid: {STAGE_KINDS}")
        if kind in BOTTLENECK_KINDS and spec.block != "bottleneck":
            raise ValueError(
                f"ArchSpec.convs[{i - 1}] (conv{i}_x) = {kind!r} needs block='bottleneck' "
                f"(P3D §3.2 and X3D blocks are bottlenecks), got block={spec.block!r}"
            )
    if spec.convs[0] == "fold" and any(k != "2d" for k in spec.convs[1:]):
        raise ValueError(
            "ArchSpec.convs: conv1 'fold' (R2D) folds time into channels, so conv2_x … conv5_x must be '2d', "
            f"got {spec.convs[1:]!r}"
        )
    if spec.block not in BLOCK_TYPES:
        raise ValueError(f"ArchSpec.block = {spec.block!r} is not valid; valid: {BLOCK_TYPES}")
    if len(spec.blocks) != 4:
        raise ValueError(f"ArchSpec.blocks needs 4 counts (conv2_x … conv5_x), got {spec.blocks!r}")
    for i, n in enumerate(spec.blocks):
        _check_int(f"blocks[{i}]", n, 1)
    ratio = spec.bottleneck_ratio
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 64:
        raise ValueError(f"ArchSpec.bottleneck_ratio must be a number in (0, 64], got {ratio!r}")
    if spec.block != "bottleneck" and ratio != 0.25:
        raise ValueError(
            f"ArchSpec.bottleneck_ratio = {ratio!r} needs block='bottleneck' (a basic block has no inner width), "
            f"got block={spec.block!r}; valid: 0.25 (the default) with basic blocks"
        )
    _check_int("width", spec.width, 1)
    _check_int("frames", spec.frames, 1)
    _check_int("sampling_rate", spec.sampling_rate, 1)
    _check_int("crop", spec.crop, 1)
    _check_int("num_classes", spec.num_classes, 1)
    _check_int("stem_stride", spec.stem_stride, 1)
    if spec.stem_kernel is not None:
        _check_int("stem_kernel", spec.stem_kernel, 1)
        if spec.stem_kernel % 2 == 0:
            raise ValueError(f"ArchSpec.stem_kernel must be odd (same padding), got {spec.stem_kernel}")
    if spec.stem_mid is not None:
        _check_int("stem_mid", spec.stem_mid, 1)
    if spec.temporal_stride not in TEMPORAL_STRIDES:
        raise ValueError(f"ArchSpec.temporal_stride = {spec.temporal_stride!r} is not valid; valid: {TEMPORAL_STRIDES}")
    if not isinstance(spec.stem_pool, bool):
        raise ValueError(f"ArchSpec.stem_pool must be true or false, got {spec.stem_pool!r}")
    if not isinstance(spec.name, str) or not spec.name:
        raise ValueError(f"ArchSpec.name must be a non-empty string, got {spec.name!r}")
    min_crop = minimum_crop(spec)
    if spec.crop < min_crop:
        raise ValueError(
            f"ArchSpec.crop = {spec.crop} is too small for the downsampling of this network "
            f"(stem stride {spec.stem_stride}{', max-pool /2' if spec.stem_pool else ''}, then conv3_1, conv4_1, conv5_1 of stride 2); "
            f"valid: crop >= {min_crop}"
        )


def minimum_crop(spec: ArchSpec) -> int:
    """Smallest crop that every stride-2 layer still halves: the product of the spatial strides.

    Same-padding convolutions would run on smaller inputs (a 1-pixel map stays 1 pixel), but then
    conv3_1 … conv5_1 no longer downsample and the network is not the one the spec describes.
    """
    return spec.stem_stride * (2 if spec.stem_pool else 1) * 2**3
