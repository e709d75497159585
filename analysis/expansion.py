"""The path of an X3D-style expansion (`search.algorithm: expand`): a figure and a step table.

The searcher (search/expand.py) writes RUN_DIR/starch_expand.jsonl after every change: the steps,
each with its candidates (axis, axes, GFLOPs, ratio to the step's start, accuracy, status) and the
index of the one kept. Nothing here recomputes a cost or re-reads a trial: the file has it all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

EXPAND_FILE = "starch_expand.jsonl"  # search.expand.EXPAND_FILE (analysis imports nothing from search)
AXIS_NAMES = {
    "base": "base",
    "frames": "frames",
    "sampling_rate": "frame rate",
    "crop": "crop",
    "width": "width",
    "depth": "depth",
    "blocks": "depth",
    "bottleneck_ratio": "bottleneck width",
}


def read_path(run_dir: str | Path) -> dict[str, Any] | None:
    """The last state the searcher wrote, or None when the run is not an expansion."""
    path = Path(run_dir) / EXPAND_FILE
    if not path.is_file():
        return None
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def _change(cand: dict[str, Any], start: dict[str, Any] | None) -> str:
    if start is None or cand["axis"] == "base":
        return "—"
    axes, before = cand["axes"], start["axes"]
    return ", ".join(f"{k} {before.get(k)}→{v}" for k, v in axes.items() if v != before.get(k))


def step_table(path: dict[str, Any]) -> pd.DataFrame:
    """One row per candidate: step, axis, what changed, GFLOPs, ×ratio, accuracy, Δacc/ΔGFLOPs, kept."""
    rows, start = [], None
    for step in path["steps"]:
        for i, c in enumerate(step["candidates"]):
            rows.append(
                {
                    "step": step["step"],
                    "axis": AXIS_NAMES.get(c["axis"], c["axis"]),
                    "change": _change(c, start),
                    "GFLOPs": c["gflops"],
                    "× GFLOPs": c.get("ratio"),
                    path["metric"]: c.get("accuracy"),
                    f"Δ{path['metric']}/ΔGFLOPs": c.get("score"),
                    "status": c.get("status") or "pending",
                    "kept": "✓" if step.get("chosen") == i else "",
                }
            )
        if step.get("chosen") is not None:
            start = step["candidates"][step["chosen"]]
    return pd.DataFrame(rows)


def display_steps(table: pd.DataFrame) -> pd.DataFrame:
    """The step table with readable numbers (the CSV keeps them whole)."""
    out = table.copy()
    for col, fmt in (("GFLOPs", "{:.4g}"), ("× GFLOPs", "×{:.2f}")):
        out[col] = [fmt.format(v) if v == v and v is not None else "—" for v in out[col]]
    for col in out.columns[5:7]:  # the accuracy and Δaccuracy/ΔGFLOPs
        out[col] = ["—" if v is None or v != v else f"{v:.3g}" for v in out[col]]
    return out


def expansion_figure(path: dict[str, Any]):
    """Accuracy vs GFLOPs: every step's candidates, the kept ones joined into the path, labelled by axis."""
    import matplotlib.pyplot as plt

    metric = path["metric"]
    trained = [(s, c) for s in path["steps"] for c in s["candidates"] if c.get("accuracy") is not None]
    if not trained:
        raise ValueError("no candidate of the expansion has an accuracy yet")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    axes_seen = sorted({AXIS_NAMES.get(c["axis"], c["axis"]) for _, c in trained})
    colours = dict(zip(axes_seen, plt.get_cmap("tab10").colors))
    for name in axes_seen:
        pts = [(c["gflops"], c["accuracy"]) for _, c in trained if AXIS_NAMES.get(c["axis"], c["axis"]) == name]
        ax.scatter(*zip(*pts), s=22, color=colours[name], alpha=0.55, label=name, zorder=2)
    kept = [s["candidates"][s["chosen"]] for s in path["steps"] if s.get("chosen") is not None]
    if kept:
        ax.plot(
            [c["gflops"] for c in kept],
            [c["accuracy"] for c in kept],
            "-o",
            color="black",
            lw=1.4,
            ms=5,
            zorder=3,
            label="kept (path)",
        )
        for n, c in enumerate(kept):
            ax.annotate(
                f"{n}: {AXIS_NAMES.get(c['axis'], c['axis'])}",
                (c["gflops"], c["accuracy"]),
                textcoords="offset points",
                xytext=(4, 5),
                fontsize=7.5,
            )
    ax.axvline(path["target_gflops"], color="grey", ls=":", lw=1, label="target GFLOPs")
    ax.set_xscale("log")
    ax.set_xlabel("GFLOPs per clip (log scale)")
    ax.set_ylabel(metric)
    ax.set_title(f"Progressive expansion (×{path['factor']:g} GFLOPs per step)", fontsize=10)
    ax.legend(fontsize=7.5, loc="best")
    fig.tight_layout()
    return fig
