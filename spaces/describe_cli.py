"""`starch describe`: the paper-style layer table, params, FLOPs and the solved width of a network."""

from __future__ import annotations

import argparse
import json

from spaces.arch import TEMPORAL_STRIDES, ArchSpec
from spaces.blueprint import blueprint
from spaces.cost import Cost, cost
from spaces.memory import BYTES, memory
from spaces.width import RULES, parse_count, solve_width
from spaces.zoo import NETWORKS, named

PRECISIONS = tuple(BYTES)
EXAMPLES = """examples:
  starch describe --list
  starch describe sr18
  starch describe mc3 --budget 33.0M --rule under --frames 4 --temporal-stride all
  starch describe d26 --budget 33.2M --json
  starch describe r2plus1d_18 --classes 400 --frames 16
  starch describe r3d_18 --batch 16 --precision bf16     # + predicted peak training memory
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "describe",
        help="layer table, params, GFLOPs and solved width k of a named network",
        description="Print the layer table of a network (as in the papers' tables), its parameters, "
        "GFLOPs (multiply-accumulates per clip) and width k, optionally solving k for a parameter budget.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", help="network name (see --list)")
    p.add_argument("--list", action="store_true", help="list the named networks and exit")
    width = p.add_mutually_exclusive_group()
    width.add_argument("--width", type=int, metavar="K", help="network width k (stage widths k, k, 2k, 4k, 8k)")
    width.add_argument("--budget", metavar="N", help="solve k for this parameter budget, e.g. 33.2M")
    p.add_argument("--rule", choices=RULES, default="nearest", help="width rule for --budget (default: nearest)")
    p.add_argument("--blocks", metavar="B2,B3,B4,B5", help="blocks per stage, e.g. 2,3,4,3")
    p.add_argument("--frames", type=int, metavar="L", help="clip length")
    p.add_argument("--crop", type=int, metavar="S", help="input crop size (56, 112, 224, …)")
    p.add_argument("--classes", type=int, metavar="C", help="number of classes")
    p.add_argument(
        "--temporal-stride",
        choices=TEMPORAL_STRIDES,
        help="halve time at conv3_1..conv5_1 in all stages (Res3D) or only temporal ones (R(2+1)D)",
    )
    p.add_argument(
        "--batch",
        type=int,
        metavar="B",
        help="also predict the peak memory of one training step on B clips (spaces.memory)",
    )
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="activations' precision for --batch")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=run)


def spec_from_args(args) -> ArchSpec:
    overrides = {}
    if args.blocks:
        try:
            overrides["blocks"] = tuple(int(b) for b in args.blocks.split(","))
        except ValueError:
            raise ValueError(f"--blocks must be 4 comma-separated integers like 2,2,2,2, got {args.blocks!r}") from None
    for flag, field in (
        ("frames", "frames"),
        ("crop", "crop"),
        ("classes", "num_classes"),
        ("temporal_stride", "temporal_stride"),
        ("width", "width"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides[field] = value
    spec = named(args.name, **overrides)
    if args.budget is not None:
        spec = spec.replace(width=solve_width(spec, parse_count(args.budget, field="--budget"), args.rule))
    return spec


def layer_rows(spec: ArchSpec, c: Cost) -> list[tuple[str, str, str, str]]:
    """(layer, output T×H×W, block, repeats) rows as in Res3D Table 13 / R(2+1)D Table 1."""
    plan = blueprint(spec)
    out = {l.name.split(".")[0]: l.out_shape for l in c.layers}
    t, s = plan.stem.stride
    rows = [("conv1", _shape(out["conv1"]), f"{plan.stem.label}, stride {t}×{s}×{s}", "")]
    for stage in plan.stages:
        first, last = stage[0], stage[-1]
        name = f"conv{first.stage}_{last.index}"
        convs = "; ".join(c_.label for c_ in first.convs)
        if spec.convs[first.stage - 1] == "p3d-mixed":
            convs = convs.replace(f"P3D-{first.convs[1].kind[-1].upper()}", "P3D A→B→C")
        ts, ss = first.convs[0].stride
        stride = f", stride {ts}×{ss}×{ss}" if (ts, ss) != (1, 1) else ""
        rows.append((f"conv{first.stage}_x", _shape(out[name]), f"[{convs}]{stride}", f"×{len(stage)}"))
    rows.append(("pool, fc", "1×1×1", f"avg pool, {spec.num_classes}-d fc", ""))
    return rows


def _shape(shape) -> str:
    return "×".join(map(str, shape[1:]))


def run(args) -> int:
    if args.list:
        for key, spec in NETWORKS.items():
            print(
                f"{key:14s} {spec.name:12s} {spec.block:10s} blocks={','.join(map(str, spec.blocks)):10s} "
                f"convs={','.join(spec.convs)}"
            )
        return 0
    if not args.name:
        raise ValueError("describe needs a network NAME (see `starch describe --list`)")
    spec = spec_from_args(args)
    c = cost(spec)
    mem = memory(spec, args.batch, args.precision) if args.batch is not None else None
    if args.json:
        print(
            json.dumps(
                {
                    "name": args.name,
                    "label": spec.name,
                    "width": spec.width,
                    "params": c.params,
                    "flops": c.flops,
                    "block_flops": c.block_flops,
                    "activations": c.activations,
                    "blocks": list(spec.blocks),
                    "convs": list(spec.convs),
                    "spec": spec.to_dict(),
                    **({"memory": mem.to_dict()} if mem else {}),
                }
            )
        )
        return 0
    rows = layer_rows(spec, c)
    widths = [max(len(r[i]) for r in rows + [("layer", "output", "block", "")]) for i in range(4)]
    print(f"{spec.name} ({args.name}): {spec.frames}×{spec.crop}×{spec.crop} input, {spec.num_classes} classes")
    print("  ".join(h.ljust(w) for h, w in zip(("layer", "output", "block", ""), widths)).rstrip())
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    print(
        f"width k = {spec.width}   params = {c.params:,} ({c.mparams:.1f}M)   "
        f"GFLOPs = {c.gflops:.2f} (residual blocks only: {c.block_flops / 1e9:.2f})"
    )
    if mem is not None:
        gib = 1024**3
        print(
            f"training step, batch {mem.batch}, {mem.precision}: peak {mem.peak / gib:.2f} GiB predicted "
            f"(weights {mem.params / gib:.2f}, grads {mem.grads / gib:.2f}, SGD momentum {mem.optimizer / gib:.2f}, "
            f"saved activations {mem.saved / gib:.2f}, largest backward transient {mem.transient / gib:.2f})"
        )
    return 0
