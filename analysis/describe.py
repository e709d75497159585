"""The `starch describe` command line that reproduces a trained network from its ArchSpec dict.

    describe_command({"convs": ["3d", "3d", "2d", "2d", "2d"], "width": 108, "frames": 4, …, "name": "MC3"})
        -> "starch describe mc3 --width 108 --frames 4 --temporal-stride all --classes 101"

The command names the paper network (spaces.zoo.NETWORKS) whose fixed fields (conv kinds, block
type, stem) equal the spec's, plus a flag for every field `starch describe` can set that differs
from that network's default. When no named network plus flags gives back the same spec (a custom
stem, say), there is no such line and the function returns None. The sampling rate is a data
setting that does not change the network, so it is not part of the command.
"""

from __future__ import annotations

from typing import Any

from spaces.arch import ArchSpec
from spaces.zoo import NETWORKS

# ArchSpec field -> `starch describe` flag (spaces/describe_cli.py), in the parser's order.
FLAGS = {
    "width": "--width",
    "blocks": "--blocks",
    "frames": "--frames",
    "crop": "--crop",
    "num_classes": "--classes",
    "temporal_stride": "--temporal-stride",
}


def _value(field: str, value: Any) -> str:
    return ",".join(map(str, value)) if field == "blocks" else str(value)


def describe_command(arch: dict[str, Any]) -> str | None:
    """The shortest `starch describe NAME [flags]` line whose network is `arch` (None if there is none)."""
    try:
        spec = ArchSpec.from_dict(arch)
    except (TypeError, ValueError):
        return None
    target = spec.replace(name="x", sampling_rate=1)
    matches = []
    for key, base in NETWORKS.items():
        overrides = {f: getattr(spec, f) for f in FLAGS if getattr(spec, f) != getattr(base, f)}
        try:
            rebuilt = base.replace(**overrides)
        except ValueError:
            continue
        if rebuilt.replace(name="x", sampling_rate=1) == target:
            # prefer the network with the spec's own label ("SR18" is not described as "d18"), then fewer flags
            matches.append(((base.name != spec.name, len(overrides)), key, overrides))
    if not matches:
        return None
    _, key, overrides = min(matches, key=lambda m: m[0])
    flags = " ".join(f"{FLAGS[f]} {_value(f, overrides[f])}" for f in FLAGS if f in overrides)
    return f"starch describe {key} {flags}".rstrip()
