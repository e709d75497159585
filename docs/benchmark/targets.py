"""The targets of issue 22 §2, computed from `starch demo` run folders (a second run: another seed).

    python docs/benchmark/targets.py RUN_DIR [RUN_DIR_2] [--per-frame f-R2D] [--metric video@1]

RUN_DIR: the demo's run folder (starch-demo/runs/demo_…); RUN_DIR_2: the same demo with another
`schedule.seed`. Prints one Markdown table row per target: measured value, target, met or missed.
Everything is read through analysis (read_runs, combine, summarize, fidelity, chance): the numbers
are the ones the report shows. "Temporal networks": every network of the run except --per-frame.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from itertools import combinations

import pandas as pd
from scipy import stats

sys.path.insert(0, os.getcwd())
from analysis import tables  # noqa: E402
from analysis.results import combine, read_runs  # noqa: E402


def tau(a, b) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant ranking: NaN, shown as such
        return float(stats.kendalltau(a, b).statistic)


def finals(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """network × repeat → final metric (%) of the completed trials."""
    done = trials[trials["status"] == "completed"]
    return done.pivot_table(index="label", columns="repeat", values=f"final_{metric}") * 100


def quarter_tau(run: str, metric: str) -> tuple[int, int, float]:
    """(epoch, epochs, Kendall τ) of the report's early-stopping table at the first evaluated epoch
    at or after a quarter of the epochs."""
    [r] = read_runs([run])
    trials, epochs = combine([r])
    fid = tables.fidelity(epochs, trials, metric)
    total = int(trials["epochs_planned"].max())
    later = fid[fid["epoch"] >= total / 4]
    row = later.iloc[0]
    return int(row["epoch"]), total, float(row["Kendall τ"])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--per-frame", default="f-R2D", help="the label of the per-frame network (not temporal)")
    p.add_argument("--metric", default="video@1")
    a = p.parse_args()
    metric = a.metric
    runs = read_runs(a.runs[:1])
    trials, _ = combine(runs)
    table = finals(trials, metric)
    if table.shape[1] < 2 or a.per_frame not in table.index:
        print(
            f"targets.py: {a.runs[0]} has {table.shape[1]} completed seed(s) per network and networks "
            f"{', '.join(table.index)}; the targets need >= 2 seeds (the demo runs 3) and the per-frame "
            f"network {a.per_frame!r} (--per-frame)",
            file=sys.stderr,
        )
        return 2
    temporal = table.drop(index=a.per_frame)
    classes = trials["num_classes"].dropna().iloc[0]
    chance = 100 * tables.chance(metric, classes)
    means, stds = temporal.mean(axis=1), temporal.std(axis=1, ddof=1)
    all_stds = table.std(axis=1, ddof=1)
    best, worst = means.max(), means.min()
    spread, median_std = best - worst, float(stds.median())
    per_frame = table.loc[a.per_frame].mean()
    pairs = [tau(temporal[i], temporal[j]) for i, j in combinations(temporal.columns, 2)]
    epoch, total, early = quarter_tau(a.runs[0], metric)

    def row(name, value, target, met):
        return f"| {name} | {value} | {target} | {'met' if met else 'missed'} |"

    out = [
        "| target | measured | target | verdict |",
        "| --- | --- | --- | --- |",
        row(
            f"best temporal network's mean {metric}",
            f"{means.idxmax()} {best:.1f} %",
            "60–95 %",
            60 <= best <= 95,
        ),
        row(
            "per-frame f-R2D vs chance",
            f"{per_frame:.1f} % (chance {chance:.1f} %): {per_frame - chance:+.1f}",
            "within 3 points",
            abs(per_frame - chance) <= 3,
        ),
        row(
            "every temporal trial above chance",
            f"lowest {temporal.min().min():.1f} % ({temporal.min(axis=1).idxmin()})",
            f"> {chance:.1f} %",
            temporal.min().min() > chance,
        ),
        row(
            "spread of the temporal means (best − worst)",
            f"{spread:.1f} points ({means.idxmax()} − {means.idxmin()}); {spread / median_std:.1f}× the median "
            f"seed std {median_std:.1f}",
            "≥ 10 points and ≥ 3× the median seed std",
            spread >= 10 and spread >= 3 * median_std,
        ),
        row(
            "largest seed std",
            f"{all_stds.max():.1f} points ({all_stds.idxmax()})",
            "≤ 8 points",
            all_stds.max() <= 8,
        ),
        row(
            "mean pairwise Kendall τ between single seeds' rankings",
            f"{sum(pairs) / len(pairs):.2f} ({', '.join(f'{t:.2f}' for t in pairs)})",
            "≥ 0.6",
            sum(pairs) / len(pairs) >= 0.6,
        ),
    ]
    if len(a.runs) > 1:
        other = finals(combine(read_runs(a.runs[1:2]))[0], metric).drop(index=a.per_frame)
        both = pd.concat([means, other.mean(axis=1)], axis=1).dropna()
        between = tau(both.iloc[:, 0], both.iloc[:, 1])
        out.append(
            row(
                "Kendall τ between the two runs' mean rankings",
                f"{between:.2f} over {len(both)} networks",
                "≥ 0.6",
                not math.isnan(between) and between >= 0.6,
            )
        )
    out.append(
        row(
            f"Kendall τ of every trial's {metric} at epoch {epoch} of {total} vs the end",
            f"{early:.2f}",
            "≥ 0.6",
            early >= 0.6,
        )
    )
    print("\n".join(out))
    print()
    print("per network and repeat (%):")
    print(table.round(1).assign(mean=table.mean(axis=1).round(1), std=table.std(axis=1, ddof=1).round(1)).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
