"""ArchSpec: a frozen, JSON-serialisable description of one video ResNet.

The spec is pure data. `spaces.build(spec)` turns it into an `nn.Module`, `spaces.cost(spec)`
into numbers; neither is stored here. `to_dict()` gives exactly what a Ray Tune trial's config
carries, and `ArchSpec.from_dict(d)` reads it back (unknown keys are errors).

Stage layout (Res3D Table 2, R(2+1)D Table 1):

    conv1 ─► conv2_x ─► conv3_x ─► conv4_x ─► conv5_x ─► global avg pool ─► fc
    width  k      k          2k         4k         8k        (bottleneck stages output 4× that)
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from spaces.kinds import BOTTLENECK_KINDS, STAGE_KINDS, STEM_KINDS, TEMPORAL_KINDS  # noqa: F401 (re-exported)
from spaces.validation import Bool, Int, Number, Str, from_dict, spec

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


@spec
class ArchSpec:
    """One network of the search space. All fields are plain JSON types."""

    convs: tuple[Str, ...] = ("3d",) * 5  # conv1, conv2_x … conv5_x kinds
    blocks: tuple[Int, ...] = (2, 2, 2, 2)  # residual blocks in conv2_x … conv5_x
    block: Literal[BLOCK_TYPES] = "basic"  # basic (2 convs) or bottleneck (1×1×1, conv, 1×1×1 ×4)
    # γb of a bottleneck block (X3D §3.1): its inner width over its output width; ResNet's 1/4, X3D's 2.25
    bottleneck_ratio: Number = Field(0.25, gt=0, le=64)
    width: Int = Field(64, ge=1)  # k: stage widths k, k, 2k, 4k, 8k
    frames: Int = Field(8, ge=1)  # clip length L
    sampling_rate: Int = Field(1, ge=1)  # take every s-th frame (does not change the network)
    crop: Int = Field(112, ge=1)  # input H = W
    num_classes: Int = Field(101, ge=1)
    temporal_stride: Literal[TEMPORAL_STRIDES] = "conv"  # see TEMPORAL_STRIDES
    stem_kernel: Int | None = Field(None, ge=1)  # spatial d of conv1; None = by crop (Res3D §3.4), else 7
    stem_stride: Int = Field(2, ge=1)  # spatial stride of conv1 (Res3D Table 5's FLOPs need 2 at every crop)
    stem_pool: Bool = False  # 3×3/2 max-pool after conv1 (2D ResNet / P3D); video ResNets have none
    stem_mid: Int | None = Field(None, ge=1)  # intermediate channels of a (2+1)D conv1; None = the M_i formula
    name: Str = Field("custom", min_length=1)  # family label for tables and plots (R3D, MC3, P3D-B, D26, …)

    @field_validator("convs")
    @classmethod
    def _five_kinds(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(v) != 5:
            raise ValueError(f"needs 5 kinds (conv1, conv2_x … conv5_x), got {len(v)}: {list(v)}")
        return v

    @field_validator("blocks")
    @classmethod
    def _four_counts(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(v) != 4 or min(v) < 1:
            raise ValueError(f"needs 4 block counts >= 1 (conv2_x … conv5_x), got {list(v)}")
        return v

    @field_validator("stem_kernel")
    @classmethod
    def _odd(cls, v: int | None) -> int | None:
        if v is not None and v % 2 == 0:
            raise ValueError(f"must be odd (same padding), got {v}")
        return v

    @model_validator(mode="after")
    def _fits(self) -> "ArchSpec":
        _validate(self)
        return self

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
        return from_dict(cls, data)

    def replace(self, **changes: Any) -> "ArchSpec":
        return dataclasses.replace(self, **changes)  # validated, errors formatted (spaces.validation.spec)


def _validate(spec: ArchSpec) -> None:
    """The rules between fields (the types above check each field)."""
    if spec.convs[0] not in STEM_KINDS:
        raise ValueError(f"convs[0] (conv1) = {spec.convs[0]!r} is not valid; valid: {', '.join(STEM_KINDS)}")
    for i, kind in enumerate(spec.convs[1:], start=2):
        if kind not in STAGE_KINDS:
            raise ValueError(f"convs[{i - 1}] (conv{i}_x) = {kind!r} is not valid; valid: {', '.join(STAGE_KINDS)}")
        if kind in BOTTLENECK_KINDS and spec.block != "bottleneck":
            raise ValueError(
                f"convs[{i - 1}] (conv{i}_x) = {kind!r} needs block='bottleneck' "
                f"(P3D §3.2 and X3D blocks are bottlenecks), got block={spec.block!r}"
            )
    if spec.convs[0] == "fold" and any(k != "2d" for k in spec.convs[1:]):
        raise ValueError(
            "convs: conv1 'fold' (R2D) folds time into channels, so conv2_x … conv5_x must be '2d', "
            f"got {list(spec.convs[1:])!r}"
        )
    if spec.block != "bottleneck" and spec.bottleneck_ratio != 0.25:
        raise ValueError(
            f"bottleneck_ratio = {spec.bottleneck_ratio!r} needs block='bottleneck' (a basic block has no inner "
            f"width), got block={spec.block!r}; valid: 0.25 (the default) with basic blocks"
        )
    min_crop = minimum_crop(spec)
    if spec.crop < min_crop:
        raise ValueError(
            f"crop = {spec.crop} is too small for the downsampling of this network "
            f"(stem stride {spec.stem_stride}{', max-pool /2' if spec.stem_pool else ''}, then conv3_1, conv4_1, conv5_1 of stride 2); "
            f"valid: crop >= {min_crop}"
        )


def minimum_crop(spec: ArchSpec) -> int:
    """Smallest crop that every stride-2 layer still halves: the product of the spatial strides.

    Same-padding convolutions would run on smaller inputs (a 1-pixel map stays 1 pixel), but then
    conv3_1 … conv5_1 no longer downsample and the network is not the one the spec describes.
    """
    return spec.stem_stride * (2 if spec.stem_pool else 1) * 2**3
