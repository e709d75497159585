"""Space: the axes of a study, their choices, and how a point of the space becomes an ArchSpec.

    Space(axes={"network": ["mc2", "mc3", "sr18"], "frames": [4], "budget": ["33.0M"]}, width_rule="under")
    space.grid()                      → every point (dicts axis → value), in a stable order
    space.to_arch(point)              → ArchSpec, with k solved when the point has a budget

Axes (each a list of choices; one choice = a fixed value):
    network          named base network (spaces.zoo): r3d_18, mc3, rmc4, r2plus1d_18, p3d_b_50, …
                     or a mapping {network: r3d_18, width: 4, name: "R3D k/2"} whose own fields
                     win over the other axes (a control network inside a sweep)
    depth            Res3D depths 10, 16, 18, 26, 34 (Table 7 blocks), or
    blocks           explicit blocks per stage, e.g. [2, 3, 4, 3]
    block            basic | bottleneck
    bottleneck_ratio γb of bottleneck blocks: inner width / output width (ResNet 0.25, X3D 2.25)
    temporal_stride  all | conv | none
    width            k, or
    budget           a parameter budget (k solved per point with `width_rule`)
    frames, crop, sampling_rate, num_classes
Pure Python, no torch, no Ray: `search` turns a Space into a Ray Tune param_space or Optuna
distributions.
"""

from __future__ import annotations

import functools
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from spaces.arch import ArchSpec
from spaces.width import RULES, params_at, parse_count, solve_width
from spaces.zoo import RES3D_DEPTHS, named

AXES = (
    "network",
    "depth",
    "blocks",
    "block",
    "bottleneck_ratio",
    "temporal_stride",
    "width",
    "budget",
    "frames",
    "crop",
    "sampling_rate",
    "num_classes",
)
PARAM_AXES = (
    "network",
    "depth",
    "blocks",
    "block",
    "bottleneck_ratio",
    "budget",
    "num_classes",
)  # params depend on these
ARCH_FIELDS = {
    "block",
    "bottleneck_ratio",
    "temporal_stride",
    "width",
    "frames",
    "crop",
    "sampling_rate",
    "num_classes",
    "blocks",
}


@dataclass(frozen=True)
class Space:
    axes: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    width_rule: str = "nearest"

    def __post_init__(self) -> None:
        axes = {}
        for name, choices in self.axes.items():
            if name not in AXES:
                raise ValueError(f"space: unknown axis {name!r}; valid axes: {', '.join(AXES)}")
            choices = tuple(tuple(c) if isinstance(c, list) else dict(c) if isinstance(c, dict) else c for c in choices)
            if not choices:
                raise ValueError(f"space.{name}: needs at least one choice")
            axes[name] = choices
        if "network" not in axes:
            raise ValueError("space: the axis 'network' (the named base networks) is required")
        if "width" in axes and "budget" in axes:
            raise ValueError("space: give either 'width' or 'budget', not both")
        if "depth" in axes and "blocks" in axes:
            raise ValueError("space: give either 'depth' or 'blocks', not both")
        if self.width_rule not in RULES:
            raise ValueError(f"space.width_rule must be one of {RULES}, got {self.width_rule!r}")
        object.__setattr__(self, "axes", axes)
        for point in itertools.islice(self.grid(), 1):  # fail early on a bad value in any axis
            self.to_arch(point, solve=False)
        for name, choices in axes.items():
            for c in choices:
                self.to_arch({**self.first(), name: c}, solve=False)
        if "budget" in axes:
            self._check_budgets()

    def _check_budgets(self) -> None:
        """A budget below a network's k = 1 size is an error here, not an infeasible trial later.

        Only the axes that change the parameter count vary (frames, crop and stride do not)."""
        varying = [n for n in PARAM_AXES if n in self.axes]
        for values in itertools.product(*(self.axes[n] for n in varying)):
            point = {**self.first(), **dict(zip(varying, values))}
            spec = self.to_arch(point, solve=False)
            budget = (
                point["budget"]
                if not isinstance(point["network"], dict)
                else point["network"].get("budget", None if "width" in point["network"] else point["budget"])
            )
            if budget is None:
                continue
            target, smallest = parse_count(budget, field="space.budget"), params_at(spec, 1)
            if target < smallest:
                raise ValueError(
                    f"space.budget {budget!r} is below the smallest {spec.name} network (k = 1 has "
                    f"{smallest:,} params); valid: budget >= {smallest:,}"
                )

    def first(self) -> dict[str, Any]:
        return {name: choices[0] for name, choices in self.axes.items()}

    @property
    def size(self) -> int:
        n = 1
        for choices in self.axes.values():
            n *= len(choices)
        return n

    def grid(self):
        names = list(self.axes)
        for values in itertools.product(*(self.axes[n] for n in names)):
            yield dict(zip(names, values))

    def varying(self) -> list[str]:
        """The axes with more than one choice (what a sweep sweeps)."""
        return [n for n, c in self.axes.items() if len(c) > 1]

    def to_arch(self, point: dict[str, Any], *, solve: bool = True) -> ArchSpec:
        """The ArchSpec of one point; with a budget, k is solved (solve=False keeps the base k)."""
        point = dict(point)
        network = point.pop("network")
        own = dict(network) if isinstance(network, dict) else {"network": network}
        try:
            spec = named(str(own.pop("network")))
        except (ValueError, KeyError) as exc:
            raise ValueError(f"space.network: {exc}") from None
        budget = point.pop("budget", None)
        depth = point.pop("depth", None)
        overrides = {k: v for k, v in point.items() if k in ARCH_FIELDS}
        if depth is not None:
            if depth not in RES3D_DEPTHS:
                raise ValueError(f"space.depth = {depth!r} is not valid; valid: {sorted(RES3D_DEPTHS)}")
            overrides["blocks"] = RES3D_DEPTHS[depth]
            overrides["name"] = f"D{depth}" if spec.name in ("SR18", "R3D-18", "R3D-34") else f"{spec.name}-D{depth}"
        if "width" in own or "budget" in own:
            budget = own.pop("budget", None)
            overrides.pop("width", None)
        try:
            spec = spec.replace(**{**overrides, **own})
        except ValueError as exc:
            raise ValueError(f"space: {exc}") from None
        if budget is not None and solve:
            spec = spec.replace(width=solve_width(spec, parse_count(budget, field="space.budget"), self.width_rule))
        elif budget is not None:
            parse_count(budget, field="space.budget")
        return spec

    def crops(self) -> list[int]:
        """Every crop size a trial of this space can have (the data's resize must fit each)."""
        out = set()
        for network in self.axes["network"]:
            own = network if isinstance(network, dict) else {"network": network}
            if "crop" in own:
                out.add(own["crop"])
            else:
                out.update(self.axes.get("crop", (named(str(own["network"])).crop,)))
        return sorted(out)

    def label(self, point: dict[str, Any]) -> str:
        network = point["network"]
        return network.get("name", network["network"]) if isinstance(network, dict) else str(network)

    def to_dict(self) -> dict[str, Any]:
        return {
            "axes": {k: [list(c) if isinstance(c, tuple) else c for c in v] for k, v in self.axes.items()},
            "width_rule": self.width_rule,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Space":
        return cls(axes={k: tuple(v) for k, v in d["axes"].items()}, width_rule=d.get("width_rule", "nearest"))

    @classmethod
    def cached(cls, axes: dict[str, Any], width_rule: str = "nearest") -> "Space":
        """The same Space as `Space(axes, width_rule)`, validated once per process for equal arguments.

        Validation builds an ArchSpec for every choice of every axis (2,000 widths: 2,000 specs, ~1 s
        on a loaded 2-core machine); a search driver asks for the experiment's space for every sample
        and a trial for its own, so they share one validated instance. Do not mutate it.
        """
        return _validated(
            json.dumps({"axes": axes, "width_rule": width_rule}, default=list)
        )  # axis order kept: it is the grid order


@functools.lru_cache(maxsize=16)
def _validated(key: str) -> Space:
    return Space.from_dict(json.loads(key))
