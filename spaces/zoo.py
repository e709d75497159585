"""The networks the papers compare, by name.

`NETWORKS` is a plain dict from name to ArchSpec; `named(name, **overrides)` returns one with
fields replaced (e.g. `named("mc3", frames=4, temporal_stride="all", width=108)`).

Defaults follow the paper that introduced each name; `PROTOCOLS` holds the two papers' input
settings so a sweep can put every network on the same footing:
- Res3D (Tran et al. 2017): UCF101 (101 classes), 4×112×112 clips for the search (SR18),
  temporal stride in every stage (Table 13).
- R(2+1)D (Tran et al. 2018): Kinetics (400 classes), 8×112×112 clips, temporal stride only where
  the convolution is temporal (§4.1).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from spaces.arch import ArchSpec

PROTOCOLS: dict[str, dict[str, Any]] = {
    "res3d": {"frames": 4, "num_classes": 101, "temporal_stride": "all", "sampling_rate": 2},
    "r2plus1d": {"frames": 8, "num_classes": 400, "temporal_stride": "conv", "sampling_rate": 1},
}

BASIC18, BASIC34 = (2, 2, 2, 2), (3, 4, 6, 3)
BOTTLENECK = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
RES3D_DEPTHS = {10: (1, 1, 1, 1), 16: (2, 2, 2, 1), 18: (2, 2, 2, 2), 26: (2, 3, 4, 3), 34: (3, 4, 6, 3)}


def _spec(name: str, convs, **kw) -> ArchSpec:
    return ArchSpec(convs=tuple(convs), name=name, **kw)


def _mc(x: int) -> tuple[str, ...]:
    """MCx: 3D in the groups before x, 2D from group x on (Res3D §3.5, R(2+1)D §3.4)."""
    return tuple("3d" if g < x else "2d" for g in range(1, 6))


def _rmc(x: int) -> tuple[str, ...]:
    """rMCx: 2D in the groups before x, 3D from group x on (R(2+1)D §3.4)."""
    return tuple("2d" if g < x else "3d" for g in range(1, 6))


def _p3d_convs(kind: str) -> tuple[str, ...]:
    """The P3D release: 2D conv1, P3D blocks in res2–res4, res5 kept 2D (P3D §3.3)."""
    return ("2d", kind, kind, kind, "2d")


def _networks() -> dict[str, ArchSpec]:
    r3d = {"frames": 8, "num_classes": 400, "temporal_stride": "conv"}  # R(2+1)D Table 1–2
    res3d = {"frames": 4, "num_classes": 101, "temporal_stride": "all"}  # Res3D §3.2 (SR18)
    nets: dict[str, ArchSpec] = {
        # Res3D Table 3: 2D ResNets on a single 112×112 frame, 3D ResNets on 8 frames.
        "resnet18_2d": _spec("2D-Res18", ["2d"] * 5, blocks=BASIC18, frames=1, num_classes=101),
        "resnet34_2d": _spec("2D-Res34", ["2d"] * 5, blocks=BASIC34, frames=1, num_classes=101),
        "r3d_18": _spec("R3D-18", ["3d"] * 5, blocks=BASIC18, **r3d),
        "r3d_34": _spec("R3D-34", ["3d"] * 5, blocks=BASIC34, **r3d),
        "sr18": _spec("SR18", ["3d"] * 5, blocks=BASIC18, **res3d),
        "2.5d": _spec("2.5D", ["2.5d"] * 5, blocks=BASIC18, **res3d),
        # R(2+1)D Table 2.
        "r2d": _spec("R2D", ["fold"] + ["2d"] * 4, blocks=BASIC18, **r3d),
        "f-r2d": _spec("f-R2D", ["2d"] * 5, blocks=BASIC18, **r3d),
        # The official R(2+1)D code (and torchvision) uses 45 stem channels; the formula gives 83.
        "r2plus1d_18": _spec("R(2+1)D", ["2plus1d"] * 5, blocks=BASIC18, stem_mid=45, **r3d),
        "r2plus1d_34": _spec("R(2+1)D-34", ["2plus1d"] * 5, blocks=BASIC34, stem_mid=45, **r3d),
        # torchvision's r2plus1d_18 (31.5M): one mid-width per block (spaces.blueprint), so its weights load.
        "r2plus1d_18_tv": _spec("R(2+1)D-tv", ["2plus1d-tv"] * 5, blocks=BASIC18, stem_mid=45, **r3d),
    }
    nets["mc1"] = _spec("MC1", _mc(1), blocks=BASIC18, **res3d)  # only Res3D has MC1
    for x in range(2, 6):
        nets[f"mc{x}"] = _spec(f"MC{x}", _mc(x), blocks=BASIC18, **r3d)
        nets[f"rmc{x}"] = _spec(f"rMC{x}", _rmc(x), blocks=BASIC18, **r3d)
    for depth, blocks in RES3D_DEPTHS.items():  # Res3D Table 7 / 14
        nets[f"d{depth}"] = _spec(f"D{depth}", ["3d"] * 5, blocks=blocks, **res3d)
    # P3D §3.3: 16×160×160 clips; the release halves time after conv1 and after res2–res4 by max-pools,
    # which our stem pool plus temporal striding in every stage reproduces shape for shape.
    p3d = {
        "block": "bottleneck",
        "frames": 16,
        "crop": 160,
        "num_classes": 101,
        "stem_pool": True,
        "stem_kernel": 7,
        "temporal_stride": "all",
    }
    for depth, blocks in BOTTLENECK.items():  # P3D Table 1 (ResNet-50 based) and Figure 1 (152)
        nets[f"resnet{depth}_2d"] = _spec(
            f"ResNet-{depth}", ["2d"] * 5, blocks=blocks, **{**p3d, "frames": 1, "crop": 224}
        )
        for variant in "abc":
            nets[f"p3d_{variant}_{depth}"] = _spec(
                f"P3D-{variant.upper()}", _p3d_convs(f"p3d-{variant}"), blocks=blocks, **p3d
            )
        # The mixed P3D ResNet (Figure 4); on ResNet-152 it is "P3D ResNet-199": each of the 47 P3D
        # blocks in res2–res4 adds a 3×1×1 layer to the 152.
        mixed = "p3d_199" if depth == 152 else f"p3d_{depth}"
        nets[mixed] = _spec(f"P3D-{199 if depth == 152 else depth}", _p3d_convs("p3d-mixed"), blocks=blocks, **p3d)
    # X3D-S-like (Feichtenhofer 2020, Table 1 and SlowFast's X3D): inverted bottlenecks with a
    # channel-wise 3×3×3 conv (γb = 2.25) in res2–res5, widths 24, 48, 96, 192 (k = 6: bottleneck
    # stages are 4k … 32k), blocks 3, 5, 11, 7, no temporal stride, 13 frames every 6th at 160²;
    # the stem strides 4 so that res2 … res5 run at X3D's 40², 20², 10², 5² (X3D strides res2).
    # Not X3D's own: its stem (1×3×3 + channel-wise 5×1×1 to 24 channels; here 3×5×5/4 to k = 6),
    # squeeze-excitation, swish, and the 432-channel conv5 + 2048-unit head: 1.92M parameters and
    # 1.79 GFLOPs where X3D-S has 3.76M and 1.96 (cost() of this spec; X3D Table 4).
    nets["x3d_s"] = _spec(
        "X3D-S",
        ["3d", "x3d", "x3d", "x3d", "x3d"],
        blocks=(3, 5, 11, 7),
        block="bottleneck",
        bottleneck_ratio=2.25,
        width=6,
        frames=13,
        sampling_rate=6,
        crop=160,
        stem_kernel=5,
        stem_stride=4,
        temporal_stride="none",
        num_classes=400,
    )
    return nets


NETWORKS: dict[str, ArchSpec] = _networks()


def canonical(name: str) -> str:
    """One spelling for every way the papers and torchvision write a name: `R3D-18`, `r3d-18` and
    `r3d_18` → `r3d18`; `R(2+1)D-34` → `r2plus1d34`; `f-R2D` → `fr2d`; `P3D-199` → `p3d199`."""
    return re.sub(r"[^a-z0-9.]", "", name.lower().replace("(2+1)", "2plus1"))


_BY_CANONICAL: dict[str, str] = {canonical(key): key for key in NETWORKS}


def lookup(name: str) -> str:
    """The NETWORKS key for `name` in any of its spellings; an unknown name suggests the nearest."""
    if not isinstance(name, str):
        raise ValueError(f"a network name must be a string, got {name!r}")
    key = name if name in NETWORKS else _BY_CANONICAL.get(canonical(name))
    if key is None:
        near = difflib.get_close_matches(canonical(name), list(_BY_CANONICAL), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(_BY_CANONICAL[n] for n in near)}? " if near else ""
        raise ValueError(f"unknown network {name!r}; {hint}valid names: {', '.join(NETWORKS)}")
    return key


def named(name: str, **overrides: Any) -> ArchSpec:
    """The paper's network `name` (any spelling `lookup` accepts), with any ArchSpec field overridden."""
    spec = NETWORKS[lookup(name)]
    return spec.replace(**overrides) if overrides else spec
