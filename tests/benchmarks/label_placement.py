"""Point labels of the accuracy-vs-GFLOPs figure: starch's placer (analysis.figures._place_labels)
beside adjustText's, on the committed reports' trials. Not a test: a script that writes both PNGs
(to look at: the counts are a crude check) and counts, per figure, labels overlapping labels,
labels within 4 px of a marker, and the seconds each took.

    pip install adjustText
    python tests/benchmarks/label_placement.py docs/fidelity/report/tables/trials.csv \\
        docs/example_report/tables/trials.csv --out /tmp/labels
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402

from analysis import figures  # noqa: E402


def adjusttext_placer(ax, xs, ys, texts, fontsize: float = 7.5, lines=()) -> None:
    """adjustText with starch's obstacles: every point and the corners of the Pareto staircase."""
    from adjustText import adjust_text

    labels = [ax.text(x, y, t, fontsize=fontsize, color="0.15") for x, y, t in zip(xs, ys, texts)]
    corners = [p for line in lines for p in line]
    adjust_text(
        labels,
        x=list(xs) + [p[0] for p in corners],
        y=list(ys) + [p[1] for p in corners],
        ax=ax,
        arrowprops=dict(arrowstyle="-", color="0.55", lw=0.6),
    )


def clashes(fig) -> dict[str, int]:
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    out = {"label on label": 0, "label on marker": 0}
    for ax in fig.axes:
        for t in ax.texts:
            t.get_window_extent(renderer)  # an annotation places its text here
        boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # the text, not its leader line
        points = [ax.transData.transform(p) for c in ax.collections for p in c.get_offsets()]
        for i, a in enumerate(boxes):
            out["label on label"] += int(sum(a.overlaps(b) for b in boxes[i + 1 :]))
            out["label on marker"] += int(
                sum(a.x0 - 4 < px < a.x1 + 4 and a.y0 - 4 < py < a.y1 + 4 for px, py in points)
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trials", nargs="+", help="a report's tables/trials.csv")
    parser.add_argument("--out", default="label-placement", help="folder for the PNGs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ours = figures._place_labels
    try:
        for source in args.trials:
            trials = pd.read_csv(source)
            for name, placer in (("starch", ours), ("adjusttext", adjusttext_placer)):
                figures._place_labels = placer
                start = time.perf_counter()
                fig = figures.accuracy_vs_flops(trials, "video@1")
                fig.canvas.draw()
                seconds = time.perf_counter() - start
                png = out / f"{Path(source).parent.parent.name or 'trials'}_{name}.png"
                fig.savefig(png, dpi=110, bbox_inches="tight")
                print(f"{source}  {name:10s} {clashes(fig)}  {seconds:.2f} s  → {png}")
    finally:
        figures._place_labels = ours


if __name__ == "__main__":
    main()
