"""Figures from the DataFrames of `analysis.results`: each function returns a matplotlib Figure.

    accuracy_vs_flops(trials, metric)   accuracy vs GFLOPs (log x), one colour and marker per family,
                                        labelled points, repeats as mean ± std, the Pareto front;
                                        one panel per dataset (Res3D Figure 5, R(2+1)D Figure 3)
    accuracy_vs_axis(trials, axis)      accuracy vs one axis of a one-axis sweep (Res3D Tables 4, 5:
                                        sampling rate, resolution, clip length as line plots)
    training_curves(epochs, trial_ids)  train (thin) and test (thick) error per epoch (R(2+1)D Figure 4)
    proxy_vs_promoted(comparison)       a proxy run's accuracy vs its promoted run's, per network

Nothing is saved here: the report (or the caller) decides where figures go.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: a report runs on a machine without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from analysis.tables import check_metric, pareto_front, summarize  # noqa: E402, F401 (pareto_front: re-exported)

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*")
SWEEP_AXES = {
    "sampling_rate": "sampling rate (every s-th frame)",
    "crop": "crop size (pixels)",
    "frames": "clip length (frames)",
    "width": "width k",
    "depth": "depth (layers)",
}
PANEL_W, PANEL_H = 5.2, 4.0


def family_styles(families: Iterable[str]) -> dict[str, dict[str, str]]:
    """A fixed colour and marker per family (sorted, so every figure of a report agrees)."""
    colours = plt.get_cmap("tab10").colors
    return {
        f: {"color": colours[i % 10], "marker": MARKERS[i % len(MARKERS)]}
        for i, f in enumerate(sorted({str(f) for f in families}))
    }


def _panels(n: int, *, width: float = PANEL_W, height: float = PANEL_H) -> tuple[Figure, list]:
    fig, axes = plt.subplots(1, max(n, 1), figsize=(width * max(n, 1), height), squeeze=False)
    return fig, list(axes[0])


def _log_axis(ax, values: Sequence[float]) -> None:
    """Log x with readable ticks even when the data spans less than a decade."""
    ax.set_xscale("log")
    lo, hi = min(values), max(values)
    pad = (hi / lo) ** 0.15 if hi > lo else 1.5
    ax.set_xlim(lo / pad, hi * pad)
    if hi / lo < 3:  # well inside one decade: evenly spaced round values, as on a linear axis
        ax.xaxis.set_major_locator(ticker.FixedLocator(ticker.MaxNLocator(nbins=5).tick_values(lo / pad, hi * pad)))
        ax.xaxis.set_minor_locator(ticker.LogLocator(subs=np.arange(1, 10)))
    elif hi / lo < 20:  # a decade or so: few decade ticks, so label 1-2-5 as well
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_locator(ticker.LogLocator(subs=np.arange(1, 10)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))  # 0.5, 10 rather than 10⁻¹
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _label_offsets() -> list[tuple[float, float, str, str, float]]:
    """Candidate (dx, dy points, ha, va, distance rank): 8 directions, near first, then farther."""
    out = []
    for rank, (fx, fy) in enumerate(((6, 4), (16, 13), (30, 22))):
        for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1), (0, -1), (1, 0), (-1, 0)):
            ha = {1: "left", -1: "right", 0: "center"}[sx]
            va = {1: "bottom", -1: "top", 0: "center"}[sy]
            out.append((sx * fx if sx else 0, sy * (fy + (5 if not sx else 0)), ha, va, rank))
    return out


def _box_distance(box, point) -> float:
    dx = max(box.x0 - point[0], 0, point[0] - box.x1)
    dy = max(box.y0 - point[1], 0, point[1] - box.y1)
    return math.hypot(dx, dy)


def _place_labels(ax, xs, ys, texts, fontsize: float = 7.5, lines=()) -> None:
    """Annotate each point at the candidate offset with the best score.

    The score counts overlaps with other labels, markers and the given lines (lists of (x, y) data
    points, e.g. the Pareto staircase), labels leaving the axes, and labels that sit nearer another
    point than their own (which would misname it); farther offsets cost a little and get a leader line.
    """
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    points = [tuple(ax.transData.transform((x, y))) for x, y in zip(xs, ys)]
    r = 6.5 * fig.dpi / 72  # the Pareto ring's radius (s=170 points²) in pixels
    placed = [_segment_box(ax, a, b) for line in lines for a, b in zip(line, line[1:])]
    markers = [Bbox([[px - r, py - r], [px + r, py + r]]) for px, py in points]
    axes_box = ax.get_window_extent(renderer)
    order = sorted(range(len(points)), key=lambda i: -ys[i])
    for i in order:
        best = None
        for dx, dy, ha, va, rank in _label_offsets():
            ann = ax.annotate(
                texts[i],
                (xs[i], ys[i]),
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=fontsize,
                color="0.15",
            )
            box = ann.get_window_extent(renderer).expanded(1.04, 1.1)
            own = _box_distance(box, points[i])
            misleading = sum(_box_distance(box, p) < own - 1 for j, p in enumerate(points) if j != i)
            inside = axes_box.contains(box.x0, box.y0) and axes_box.contains(box.x1, box.y1)
            score = (
                10 * sum(box.overlaps(b) for b in placed)
                + 10 * sum(box.overlaps(m) for m in markers)
                + 6 * misleading
                + 10 * (not inside)
                + 2 * rank
            )
            if best is None or score < best[0]:
                if best is not None:
                    best[1].remove()
                best = (score, ann, box, rank)
            else:
                ann.remove()
            if score == 0:
                break
        score, ann, box, rank = best
        if rank:  # a leader line back to the point
            ann.remove()
            ann = ax.annotate(
                ann.get_text(),
                (xs[i], ys[i]),
                xytext=ann.xyann,
                textcoords="offset points",
                ha=ann.get_ha(),
                va=ann.get_va(),
                fontsize=fontsize,
                color="0.15",
                arrowprops=dict(arrowstyle="-", color="0.55", lw=0.6, shrinkA=0, shrinkB=5),
            )
        placed.append(box)


def _segment_box(ax, a, b):
    """The display-space box of a horizontal or vertical segment (a thin obstacle for labels)."""
    from matplotlib.transforms import Bbox

    (x0, y0), (x1, y1) = ax.transData.transform(a), ax.transData.transform(b)
    return Bbox([[min(x0, x1), min(y0, y1) - 1], [max(x0, x1), max(y0, y1) + 1]])


def _staircase(xs, ys) -> list[tuple[float, float]]:
    """The corners of a steps-post line through (xs, ys)."""
    out = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        if i:
            out.append((x, ys[i - 1]))
        out.append((x, y))
    return out


def accuracy_vs_flops(
    trials: pd.DataFrame, metric: str = "video@1", *, label_points: bool = True, max_labels: int = 16
) -> Figure:
    """Accuracy vs GFLOPs per clip, one panel per dataset; points are networks (mean ± std of repeats).

    Points are labelled when a panel has at most `max_labels` networks, else only the Pareto front is.
    """
    s = summarize(trials, metric)
    s = s[(s["n"] > 0) & s["gflops"].notna()]
    if s.empty:
        raise ValueError(f"no trial has both {metric} and GFLOPs yet: nothing to plot")
    datasets = list(dict.fromkeys(s["dataset"]))
    styles = family_styles(trials["family"].dropna())  # all families: the same colours in every figure
    fig, axes = _panels(len(datasets))
    for ax, dataset in zip(axes, datasets):
        d = s[s["dataset"] == dataset].reset_index(drop=True)
        for family, g in d.groupby("family", sort=True):
            style = styles[str(family)]
            ax.errorbar(
                g["gflops"],
                g["mean"] * 100,
                yerr=clipped_error(g["mean"], g["std"]),
                fmt=style["marker"],
                color=style["color"],
                ms=7,
                capsize=3,
                lw=1,
                label=family,
                zorder=3,
            )
        front = d.loc[pareto_front(list(d["gflops"]), list(d["mean"]))]
        _log_axis(ax, list(d["gflops"]))
        # the front as a staircase, held to the right edge: no network beyond it is better
        xs = list(front["gflops"]) + [ax.get_xlim()[1]]
        ys = list(front["mean"] * 100) + [front["mean"].iloc[-1] * 100]
        ax.plot(xs, ys, ls="--", color="0.45", lw=1, drawstyle="steps-post", zorder=2)
        ax.scatter(front["gflops"], front["mean"] * 100, s=170, facecolors="none", edgecolors="0.45", lw=1, zorder=2)
        _pad_y(ax, d["mean"], d["std"])
        ax.set_title(str(dataset))
        ax.set_xlabel("GFLOPs per clip (log scale)")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(True, which="major", alpha=0.3)
        if label_points:
            show = _merge_coincident(d if len(d) <= max_labels else front)
            fig.canvas.draw()  # fix the axes limits before measuring label boxes
            _place_labels(
                ax, list(show["gflops"]), list(show["mean"] * 100), list(show["label"]), lines=[_staircase(xs, ys)]
            )
    front_handle = Line2D([], [], ls="--", color="0.45", marker="o", ms=11, mfc="none", label="Pareto front")
    _figure_legend(fig, axes, styles, extra=[front_handle])
    return fig


def _merge_coincident(points: pd.DataFrame) -> pd.DataFrame:
    """One label per drawn position: networks at the same GFLOPs and accuracy share it ("A / B")."""
    keys = [points["gflops"].round(12), (points["mean"] * 100).round(6)]
    merged = points.groupby(keys, sort=False).agg(
        gflops=("gflops", "first"), mean=("mean", "first"), label=("label", " / ".join)
    )
    return merged.reset_index(drop=True)


def clipped_error(means: pd.Series, stds: pd.Series) -> list[list[float]]:
    """matplotlib's yerr, in percent, for accuracies (fractions) as mean ± std: the bar stops at 0 and
    100 %, the range an accuracy can take (a seed std of 23 points at a mean of 86 % would reach 109 %)."""
    means, stds = pd.Series(means, dtype=float), pd.Series(stds, dtype=float).fillna(0)
    below = [min(s, m) * 100 for m, s in zip(means, stds)]
    above = [min(s, max(0.0, 1 - m)) * 100 for m, s in zip(means, stds)]
    return [below, above]


def _pad_y(ax, means: pd.Series, stds: pd.Series) -> None:
    """Room for labels above and below the points (fractions in, percent drawn), without running far
    past 0 or 100 %."""
    below, above = clipped_error(means, stds)
    percent = pd.Series(means, dtype=float).to_numpy() * 100
    lo, hi = float((percent - below).min()), float((percent + above).max())
    span = max(hi - lo, 2.0)
    ax.set_ylim(max(lo - 0.25 * span, min(lo, 0) - 4), min(hi + 0.3 * span, max(hi, 100) + 12))


def _figure_legend(fig: Figure, axes, styles, extra=()) -> None:
    """One legend under the panels, for the families drawn in them."""
    drawn = {label for ax in axes for label in ax.get_legend_handles_labels()[1]}
    handles = [
        Line2D([], [], ls="", marker=s["marker"], color=s["color"], ms=7, label=f)
        for f, s in styles.items()
        if f in drawn
    ] + list(extra)
    longest = max((len(h.get_label()) for h in handles), default=1)
    per_column = 0.45 + 0.075 * longest  # inches: marker, gap and ~8.5 pt characters
    ncol = max(1, min(len(handles), int(fig.get_figwidth() / per_column)))
    rows = math.ceil(len(handles) / ncol)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=8.5)
    fig.tight_layout(rect=(0, 0.05 + 0.045 * rows, 1, 1))


def accuracy_vs_axis(trials: pd.DataFrame, axis: str, metric: str = "video@1") -> Figure:
    """Accuracy against one architecture/input axis, one line per family, one panel per dataset.

    The x positions are evenly spaced categories labelled with the axis values (as the papers' tables).
    """
    if axis not in SWEEP_AXES:
        raise ValueError(f"axis {axis!r} is not a sweep axis; valid: {', '.join(SWEEP_AXES)}")
    s = summarize(trials, metric)
    s = s[(s["n"] > 0) & s[axis].notna()]
    varies = s.groupby(["dataset", "family"])[axis].transform("nunique") > 1
    s = s[varies]  # a family trained at one value only is not part of this sweep
    if s.empty:
        raise ValueError(f"no family was trained at several values of {axis!r}: no sweep to plot")
    values = sorted(s[axis].unique().tolist())
    position = {v: i for i, v in enumerate(values)}
    datasets = list(dict.fromkeys(s["dataset"]))
    styles = family_styles(trials["family"].dropna())
    fig, axes = _panels(len(datasets), width=4.6, height=3.6)
    for ax, dataset in zip(axes, datasets):
        d = s[s["dataset"] == dataset]
        for family, g in d.groupby("family", sort=True):
            g = g.groupby(axis, as_index=False).agg(mean=("mean", "mean"), std=("std", "mean")).sort_values(axis)
            style = styles[str(family)]
            ax.errorbar(
                [position[v] for v in g[axis]],
                g["mean"] * 100,
                yerr=clipped_error(g["mean"], g["std"]),
                marker=style["marker"],
                color=style["color"],
                capsize=3,
                lw=1.3,
                ms=6,
                label=family,
            )
        ax.set_xticks(range(len(values)), [str(v) for v in values])
        ax.set_xlim(-0.5, len(values) - 0.5)
        _pad_y(ax, d["mean"], d["std"])
        ax.set_xlabel(SWEEP_AXES[axis])
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(str(dataset))
        ax.grid(True, alpha=0.3)
    _figure_legend(fig, axes, styles)
    return fig


def sweep_axes(trials: pd.DataFrame) -> list[str]:
    """The axes some family was trained at several values of (candidates for `accuracy_vs_axis`)."""
    done = trials[trials["status"].isin(["completed", "stopped early"])]
    found = []
    for axis in SWEEP_AXES:
        if axis == "width" or axis not in done:
            continue  # width follows a budget in most sweeps: it is on the accuracy-vs-FLOPs plot
        if (done.groupby(["dataset", "family"])[axis].nunique() > 1).any():
            found.append(axis)
    return found


def default_curve_trials(trials: pd.DataFrame, metric: str = "video@1", limit: int = 4) -> list[tuple[str, str]]:
    """(run, trial_id) of the best trial of each family, best families first, at most `limit` per dataset."""
    column = f"final_{check_metric(metric)}"
    ok = trials.dropna(subset=[column]).sort_values(column, ascending=False, kind="stable")
    best = ok.drop_duplicates(["dataset", "family"])
    best = best.groupby("dataset", sort=False).head(limit)
    return list(zip(best["run"], best["trial_id"]))


def training_curves(
    epochs: pd.DataFrame, trials: Iterable[tuple[str, str]] | None = None, *, families: Iterable[str] | None = None
) -> Figure:
    """Train (thin) and test (thick, 1 − clip@1) error per epoch of the chosen (run, trial_id) pairs.

    Each trial keeps its family's colour (as in the other figures: pass `families`, every family of
    the trial table, to get the same mapping) unless a panel shows two trials of one family; then
    trials get colours of their own.
    """
    styles = family_styles(families if families is not None else epochs["family"].fillna("?"))
    if trials is not None:
        wanted = set(map(tuple, trials))
        epochs = epochs[[(r, t) in wanted for r, t in zip(epochs["run"], epochs["trial_id"])]]
    if epochs.empty:
        raise ValueError("no epoch record for the chosen trials: nothing to plot")
    datasets = list(dict.fromkeys(epochs["dataset"]))
    palette = plt.get_cmap("tab10").colors
    fig, axes = _panels(len(datasets), width=4.8, height=3.6)
    for ax, dataset in zip(axes, datasets):
        d = epochs[epochs["dataset"] == dataset]
        groups = list(d.groupby(["run", "trial_id"], sort=False))
        by_family = d.drop_duplicates(["run", "trial_id"])["family"].value_counts()
        handles = []
        for i, (_, g) in enumerate(groups):
            g = g.sort_values("epoch")
            family = str(g["family"].iloc[0]) if pd.notna(g["family"].iloc[0]) else "?"
            colour = styles[family]["color"] if by_family.max() == 1 and family in styles else palette[i % 10]
            ax.plot(g["epoch"], g["train_error"] * 100, color=colour, lw=0.9, marker=".", ms=4)
            test = g.dropna(subset=["test_error"])
            ax.plot(test["epoch"], test["test_error"] * 100, color=colour, lw=2.4, marker="o", ms=4)
            handles.append(Line2D([], [], color=colour, lw=2, label=str(g["label"].iloc[0])))
        handles += [
            Line2D([], [], color="0.3", lw=0.9, marker=".", label="train"),
            Line2D([], [], color="0.3", lw=2.4, marker="o", label="test (1 − clip@1)"),
        ]
        ax.legend(
            handles=handles,
            fontsize=7.5,
            frameon=False,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.2),
            ncol=min(3, len(handles)),
        )
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (%)")
        ax.set_title(str(dataset))
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def proxy_vs_promoted(
    table: pd.DataFrame, metric: str = "video@1", *, proxy: str = "proxy", promoted: str = "promoted"
) -> Figure:
    """Each network's accuracy in the proxy run (x) against the promoted run (y), mean ± std over seeds
    (analysis.promotion.comparison's table); the title gives Kendall τ. A ranking that held rises
    from left to right; the dotted line is y = x (the same accuracy at both fidelities)."""
    from analysis.promotion import agreement

    t = table[table["proxy mean"].notna() & table["promoted mean"].notna()]
    if t.empty:
        raise ValueError(f"no network has {metric} in both runs yet: nothing to plot")
    fig, ax = plt.subplots(figsize=(PANEL_W, PANEL_H))
    x, y = t["proxy mean"] * 100, t["promoted mean"] * 100
    ax.errorbar(
        x,
        y,
        xerr=(t["proxy std"] * 100).fillna(0),
        yerr=(t["promoted std"] * 100).fillna(0),
        fmt="o",
        color="tab:blue",
        ms=7,
        capsize=3,
        lw=1,
        zorder=3,
    )
    lo = float(min(x.min(), y.min()))
    hi = float(max(x.max(), y.max()))
    pad = max((hi - lo) * 0.15, 2.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], ls=":", color="0.6", lw=1, zorder=1)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    stats = agreement(table)
    tau = "τ —" if stats["Kendall τ"] != stats["Kendall τ"] else f"Kendall τ {stats['Kendall τ']:.2f}"
    ax.set_title(f"{metric}: {tau} over {stats['networks']} network(s)", fontsize=10)
    ax.set_xlabel(f"{metric} (%) in {proxy}")
    ax.set_ylabel(f"{metric} (%) in {promoted}")
    ax.grid(True, alpha=0.3)
    fig.canvas.draw()
    _place_labels(ax, list(x), list(y), list(t["architecture"]))
    fig.tight_layout()
    return fig
