"""Tables from the trial DataFrame of `analysis.results.load`: each function returns a DataFrame.

    summarize(trials, metric)     one row per network per dataset: repeats (seeds) as mean, std, n
    ranking(trials, metric)       rank, architecture, k, params (M), GFLOPs, metric ± std, status
    sweep_table(trials, metric)   the papers' layout: one column per network, rows k / params / FLOPs /
                                  accuracy (Res3D Tables 6 and 7)
    pareto_front(x, y)            the networks no other beats on both accuracy and GFLOPs
    consistency(trials, metric)   Kendall τ and Spearman ρ (with p-values) of the ranking of the shared
                                  networks on every pair of datasets (Res3D §4, Figure 5)
    verdict(ranking, metric, classes)  whether a best network stands out of seed noise and chance, in words
    fidelity(epochs, trials, metric)  rank correlation of the metric at epoch e with the final one:
                                  how much an early stop (ASHA) would have told
    to_markdown / to_latex / CSV (pandas)  rendering; numbers are formatted by `display_*`

Accuracies are fractions in the DataFrames and percent in the displayed tables (as in the papers).
"""

from __future__ import annotations

import math
import warnings
from itertools import combinations
from typing import Sequence

import pandas as pd
from scipy import stats

from analysis import ACCURACY_METRICS

GROUP = ["dataset", "arch_key", "recipe_key"]


def check_metric(metric: str) -> str:
    if metric not in ACCURACY_METRICS:
        raise ValueError(f"metric {metric!r} is not reported by the trials; valid: {', '.join(ACCURACY_METRICS)}")
    return metric


def _status_text(statuses: pd.Series) -> str:
    counts = statuses.value_counts(sort=False)
    if len(counts) == 1 and counts.iloc[0] == 1:
        return str(counts.index[0])
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def pareto_front(x: Sequence[float], y: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats (at most the FLOPs and at least the accuracy), by x."""
    order = sorted(range(len(x)), key=lambda i: (x[i], -y[i]))
    front, best = [], -math.inf
    for i in order:
        if y[i] > best:
            front.append(i)
            best = y[i]
    return front


def summarize(trials: pd.DataFrame, metric: str = "video@1") -> pd.DataFrame:
    """One row per (dataset, network, recipe without seed): mean and std over its trials.

    Columns: dataset, label, family, width, params, gflops, mean, std, n (trials with the metric),
    trials, status (e.g. "completed" or "2 completed, 1 errored"), reason, plus the sweep axes.
    """
    column = f"final_{check_metric(metric)}"
    keep = [
        "dataset",
        "label",
        "family",
        "width",
        "params",
        "gflops",
        "sampling_rate",
        "crop",
        "frames",
        "blocks",
        "convs",
        "depth",
        "arch_key",
        "status",
    ]
    if trials.empty:
        return pd.DataFrame(columns=keep + ["mean", "std", "n", "trials", "reason"])
    rows = []
    for _, group in trials.groupby(GROUP, sort=False, dropna=False):
        values = group[column].dropna()
        first = group.iloc[0]
        reasons = group["reason"].dropna().unique() if "reason" in group else []
        row = {k: first.get(k) for k in keep}
        row.update(
            params=group["params"].dropna().iloc[0] if group["params"].notna().any() else math.nan,
            gflops=group["gflops"].dropna().iloc[0] if group["gflops"].notna().any() else math.nan,
            mean=values.mean() if len(values) else math.nan,
            std=values.std(ddof=1) if len(values) > 1 else math.nan,
            n=len(values),
            trials=len(group),
            status=_status_text(group["status"]),
            reason="; ".join(map(str, reasons)) or None,
        )
        rows.append(row)
    return pd.DataFrame(rows)


def efficiency(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, architecture), most efficient first: GFLOPs per clip (MACs), the
    training pass's achieved GFLOP/s (6 × MACs × clips/s, trainers.device.training_flops) and its
    fraction of the trial's measured matmul peak; medians over the trials that recorded them. With
    per-phase times (trials of issue 25 on), also `phase_<name>_share` per phase of
    analysis.results.phase_shares: where the trials' time went."""
    columns = [
        "dataset",
        "architecture",
        "trials",
        "gflops",
        "achieved_gflops_per_s",
        "peak_gflops_per_s",
        "efficiency",
    ]
    if "efficiency" not in trials or not trials["efficiency"].notna().any():
        return pd.DataFrame(columns=columns)
    t = trials[trials["efficiency"].notna()]
    phases = [c for c in t.columns if c.startswith("phase_") and c.endswith("_share") and t[c].notna().any()]
    rows = [
        {
            "dataset": dataset,
            "architecture": label,
            "trials": len(group),
            "gflops": group["gflops"].median(),
            "achieved_gflops_per_s": group["achieved_gflops_per_s"].median(),
            "peak_gflops_per_s": group["peak_gflops_per_s"].median(),
            "efficiency": group["efficiency"].median(),
            **{c: group[c].median() for c in phases},
        }
        for (dataset, label), group in t.groupby(["dataset", "label"], sort=False, dropna=False)
    ]
    table = pd.DataFrame(rows, columns=columns + phases)
    return table.sort_values("efficiency", ascending=False, ignore_index=True)


def ranking(trials: pd.DataFrame, metric: str = "video@1") -> pd.DataFrame:
    """Networks ranked by mean final `metric` within each dataset; those without it come last, unranked."""
    s = summarize(trials, metric)
    order = {d: i for i, d in enumerate(dict.fromkeys(s["dataset"]))}  # datasets in the order of the runs
    s = s.assign(_order=s["dataset"].map(order))
    s = s.sort_values(["_order", "mean"], ascending=[True, False], na_position="last", kind="stable")
    s["rank"] = s.groupby("dataset")["mean"].rank(ascending=False, method="min").astype("Int64")
    out = pd.DataFrame(
        {
            "dataset": s["dataset"],
            "rank": s["rank"],
            "architecture": s["label"],
            "k": s["width"].astype("Int64"),
            "params (M)": s["params"] / 1e6,
            "GFLOPs": s["gflops"],
            f"{metric} (%)": s["mean"] * 100,
            "std (%)": s["std"] * 100,
            "n": s["n"],
            "status": s["status"],
        }
    )
    return out.reset_index(drop=True)


def display_ranking(table: pd.DataFrame, metric: str = "video@1") -> pd.DataFrame:
    """The ranking with mean ± std in one column and numbers rounded, ready for Markdown / LaTeX."""
    acc = f"{metric} (%)"
    out = table.drop(columns=[acc, "std (%)", "n"]).copy()
    out["rank"] = [str(r) if pd.notna(r) else "—" for r in table["rank"]]
    out["k"] = [str(k) if pd.notna(k) else "—" for k in table["k"]]
    out["params (M)"] = [_fmt(v, 3 if v < 1 else 2) for v in table["params (M)"]]
    out["GFLOPs"] = [_fmt(v, 4 if v < 0.1 else 2) for v in table["GFLOPs"]]
    out.insert(
        out.columns.get_loc("status"), f"{metric} (%) ± std", [_pm(m, s) for m, s in zip(table[acc], table["std (%)"])]
    )
    if out["dataset"].nunique() <= 1:
        out = out.drop(columns="dataset")
    return out


def chance(metric: str, num_classes) -> float | None:
    """Accuracy of guessing, as a fraction: k / classes for a top-k metric (None if unknown)."""
    if metric not in ACCURACY_METRICS or num_classes is None or pd.isna(num_classes) or num_classes < 1:
        return None
    return min(1.0, int(metric.rsplit("@", 1)[1]) / float(num_classes))


def verdict(table: pd.DataFrame, metric: str = "video@1", num_classes=None, test_videos=None) -> tuple[bool, str]:
    """What one dataset's ranking supports: (a winner stands out, the sentence that says so).

    `table` is `ranking()` restricted to one dataset. A network is ahead of another, or of chance,
    only by more than one standard deviation over its seeds (the larger of the two networks'). A
    network with one seed has no std: twice its binomial standard error over `test_videos` stands in
    (2 sqrt(p (1 - p) / N), about a 95 % interval of the test-set sampling alone), or 0 when N is
    unknown.
    """
    acc, sd = f"{metric} (%)", "std (%)"
    rows = table[table[acc].notna()].sort_values(acc, ascending=False, kind="stable")
    if rows.empty:
        return False, f"No trial has reported {metric} yet."
    top = rows.iloc[0]

    def noise(r) -> float:
        if pd.notna(r[sd]):
            return r[sd]
        if test_videos is None or pd.isna(test_videos) or test_videos < 1:
            return 0.0
        p = r[acc] / 100
        return 200 * math.sqrt(max(p * (1 - p), 0.0) / test_videos)

    level = chance(metric, num_classes)
    if level is not None and top[acc] - level * 100 <= noise(top):
        return False, (
            f"No network beat chance ({level * 100:.1f} %): the best, {top['architecture']}, "
            f"reached {metric} {_pm(top[acc], top[sd])} %."
        )
    if len(rows) > 1:
        tied = rows[top[acc] - rows[acc] <= rows.apply(lambda r: max(noise(top), noise(r)), axis=1)]
        if len(tied) > 1:
            names = [f"{r['architecture']} ({metric} {_pm(r[acc], r[sd])} %)" for _, r in tied.iterrows()]
            listed = " and ".join([", ".join(names[:-1]), names[-1]])
            how = (
                "within one std over seeds"
                if rows.loc[tied.index, sd].notna().all()
                else "within one std (over seeds, or two binomial standard errors for a single seed)"
            )
            return False, f"No single best architecture: {listed} tie {how}."
    if pd.isna(top[sd]):
        return True, (
            f"{top['architecture']} is first, ahead by more than two binomial standard errors, with "
            f"one seed: repeats (search.repeats) would tell whether its lead is more than seed noise."
        )
    return True, f"{top['architecture']} is ahead of every other network by more than one std over seeds."


def sweep_table(trials: pd.DataFrame, metric: str = "video@1", dataset: str | None = None) -> pd.DataFrame:
    """Res3D Table 6/7 layout for one dataset: one column per network, rows k, params, FLOPs, accuracy."""
    s = summarize(trials, metric)
    if dataset is not None:
        s = s[s["dataset"] == dataset]
    elif s["dataset"].nunique() > 1:
        raise ValueError(f"sweep_table shows one dataset; pass dataset= one of {sorted(s['dataset'].unique())}")
    s = s[s["n"] > 0]
    rows = {
        "k": [str(int(k)) if pd.notna(k) else "—" for k in s["width"]],
        "# params (×10⁶)": [_fmt(v / 1e6, 3 if v < 1e6 else 1) for v in s["params"]],
        "FLOPs (×10⁹)": [_fmt(v, 4 if v < 0.1 else 1) for v in s["gflops"]],
        f"{metric} (%)": [_pm(m * 100, sd * 100) for m, sd in zip(s["mean"], s["std"])],
    }
    return pd.DataFrame(rows, index=list(s["label"])).T.rename_axis("Net").reset_index()


def rank_correlation(values: pd.DataFrame) -> tuple[int, float, float, float, float]:
    """n, Kendall τ, its p, Spearman ρ, its p of two columns (NaN below 3 points or if constant)."""
    a, b = values.iloc[:, 0], values.iloc[:, 1]
    n = len(values)
    if n < 3:
        return n, math.nan, math.nan, math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN, which we show as —
        tau = stats.kendalltau(a, b)
        rho = stats.spearmanr(a, b)
    return n, float(tau.statistic), float(tau.pvalue), float(rho.statistic), float(rho.pvalue)


def consistency(trials: pd.DataFrame, metric: str = "video@1") -> pd.DataFrame:
    """Rank agreement of the networks that every pair of datasets shares (matched by ArchSpec)."""
    s = summarize(trials, metric)
    s = s[s["n"] > 0]
    table = s.pivot_table(index="arch_key", columns="dataset", values="mean", aggfunc="mean")
    table = table[[d for d in dict.fromkeys(s["dataset"]) if d in table]]  # the runs' order, not sorted
    rows = []
    for a, b in combinations(list(table.columns), 2):
        n, tau, p_tau, rho, p_rho = rank_correlation(table[[a, b]].dropna())
        rows.append(
            {
                "dataset A": a,
                "dataset B": b,
                "shared networks": n,
                "Kendall τ": tau,
                "p (τ)": p_tau,
                "Spearman ρ": rho,
                "p (ρ)": p_rho,
            }
        )
    return pd.DataFrame(
        rows, columns=["dataset A", "dataset B", "shared networks", "Kendall τ", "p (τ)", "Spearman ρ", "p (ρ)"]
    )


def fidelity(epochs: pd.DataFrame, trials: pd.DataFrame, metric: str = "video@1") -> pd.DataFrame:
    """Per dataset and evaluated epoch e: rank correlation of `metric` at e with its final value.

    Only trials that completed every epoch count, so all rows of one dataset compare the same trials.
    """
    check_metric(metric)
    done = trials.loc[trials["status"] == "completed", ["run", "trial_id"]]
    ep = epochs.merge(done, on=["run", "trial_id"]).dropna(subset=[metric])
    rows = []
    for dataset, group in ep.groupby("dataset", sort=False):
        wide = group.pivot_table(index=["run", "trial_id"], columns="epoch", values=metric)
        final = group.sort_values("epoch").groupby(["run", "trial_id"])[metric].last()
        for epoch in wide.columns:
            pair = pd.concat([wide[epoch], final], axis=1).dropna()
            n, tau, p_tau, rho, p_rho = rank_correlation(pair)
            rows.append(
                {
                    "dataset": dataset,
                    "epoch": int(epoch),
                    "trials": n,
                    "Kendall τ": tau,
                    "p (τ)": p_tau,
                    "Spearman ρ": rho,
                    "p (ρ)": p_rho,
                }
            )
    return pd.DataFrame(rows, columns=["dataset", "epoch", "trials", "Kendall τ", "p (τ)", "Spearman ρ", "p (ρ)"])


def display_stats(table: pd.DataFrame) -> pd.DataFrame:
    """Correlations to 2 decimals, p-values to 3 significant digits, NaN as —."""
    out = table.copy()
    for column in out.columns:
        if column.startswith("p ("):
            out[column] = ["—" if pd.isna(v) else "<0.001" if v < 0.001 else f"{v:.3g}" for v in table[column]]
        elif column in ("Kendall τ", "Spearman ρ"):
            out[column] = [_fmt(v, 2) for v in table[column]]
    return out


# ------------------------------------------------------------------------------------------ rendering


def _fmt(value, digits: int) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _pm(mean, std) -> str:
    if mean is None or pd.isna(mean):
        return "—"
    return f"{mean:.1f} ± {std:.1f}" if std is not None and pd.notna(std) else f"{mean:.1f}"


def _cell(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    return str(value)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped, one row per line).

    Kept by hand rather than `DataFrame.to_markdown` (tabulate): that pads every column to its widest
    cell, escapes no `|` and writes NaN as `nan`, so it would still need this escaping, and a row
    would no longer read (or grep) as `| MC3 | 8 | … |`. Both render the same table."""
    header = [_cell(c).replace("|", "\\|") for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "—": "--",
    "τ": r"$\tau$",
    "ρ": r"$\rho$",
    "×": r"$\times$",
    "⁶": r"$^6$",
    "⁹": r"$^9$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: pd.DataFrame, caption: str | None = None) -> str:
    """A booktabs `table` environment (needs \\usepackage{booktabs}), written by pandas' Styler;
    the cells are escaped here first, since pandas' own LaTeX escape leaves ±, τ, — as Unicode."""
    cells = table.map(lambda v: latex_escape(_cell(v)))
    cells.columns = [latex_escape(str(c)) for c in table.columns]
    return cells.style.hide(axis="index").to_latex(
        caption=latex_escape(caption) if caption else None,
        position="t",
        position_float="centering",
        hrules=True,  # booktabs' \toprule, \midrule, \bottomrule
        column_format="l" * len(table.columns),
        environment="table",
    )
