"""Did the proxy rank right? A run that `starch promote` made, against the proxy run it came from.

    comparison(proxy, promoted, metric) -> one row per promoted network: its GFLOPs, the proxy's and the
                                           promoted run's mean ± std over seeds and rank, and whether it
                                           is on the promoted run's Pareto front (metric vs GFLOPs)
    agreement(table)                    -> Kendall τ and Spearman ρ of the two means, with p-values
    display(table, metric)              -> the same, rounded, for Markdown / LaTeX
    figures.proxy_vs_promoted(table)    -> proxy accuracy vs promoted accuracy per network

Networks are matched by ArchSpec (analysis.results.arch_key: the class count follows the dataset).
Both sides count completed trials only: `starch promote` chose from those, and a trial stopped early
or still running has not seen its schedule. The promoted run's experiment says where it came from
(`promoted_from` in starch_experiment.json). pandas and scipy only.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.tables import _fmt, _pm, pareto_front, rank_correlation, summarize

COLUMNS = [
    "architecture",
    "GFLOPs",
    "proxy mean",
    "proxy std",
    "proxy n",
    "proxy rank",
    "promoted mean",
    "promoted std",
    "promoted n",
    "promoted rank",
    "promoted front",
]


def promoted_from(experiment: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `promoted_from` record of a run's starch_experiment.json, or None."""
    record = (experiment or {}).get("promoted_from")
    return record if isinstance(record, dict) and record.get("run") else None


def _done(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    s = summarize(trials[trials["status"] == "completed"], metric)
    return s[s["n"] > 0].set_index("arch_key")


def comparison(proxy: pd.DataFrame, promoted: pd.DataFrame, metric: str = "video@1") -> pd.DataFrame:
    """One row per network the promoted run trains (its trials' order); accuracies as fractions."""
    ours, theirs = _done(promoted, metric), _done(proxy, metric)
    keys = list(dict.fromkeys(promoted.loc[promoted["status"] != "infeasible", "arch_key"]))
    labels = dict(zip(proxy["arch_key"], proxy["label"])) | {
        k: v for k, v in zip(promoted["arch_key"], promoted["label"]) if k not in set(proxy["arch_key"])
    }
    gflops = dict(zip(promoted["arch_key"], promoted["gflops"]))
    rows = []
    for key in keys:
        p = theirs.loc[key] if key in theirs.index else None
        q = ours.loc[key] if key in ours.index else None
        rows.append(
            {
                "arch_key": key,
                "architecture": labels.get(key, "?"),
                "GFLOPs": q["gflops"] if q is not None else gflops.get(key, math.nan),
                "proxy mean": p["mean"] if p is not None else math.nan,
                "proxy std": p["std"] if p is not None else math.nan,
                "proxy n": int(p["n"]) if p is not None else 0,
                "promoted mean": q["mean"] if q is not None else math.nan,
                "promoted std": q["std"] if q is not None else math.nan,
                "promoted n": int(q["n"]) if q is not None else 0,
            }
        )
    table = pd.DataFrame(rows, columns=["arch_key", *[c for c in COLUMNS if "rank" not in c and c != "promoted front"]])
    for side in ("proxy", "promoted"):
        table[f"{side} rank"] = table[f"{side} mean"].rank(ascending=False, method="min").astype("Int64")
    trained = table[table["promoted mean"].notna() & table["GFLOPs"].notna()]
    front = (
        set(trained.index[pareto_front(list(trained["GFLOPs"]), list(trained["promoted mean"]))])
        if len(trained)
        else set()
    )
    table["promoted front"] = [
        ("stayed on the front" if i in front else "fell off the front") if pd.notna(m) else "no completed trial yet"
        for i, m in zip(table.index, table["promoted mean"])
    ]
    return table.sort_values("proxy rank", kind="stable", na_position="last").reset_index(drop=True)[
        ["arch_key", *COLUMNS]
    ]


def agreement(table: pd.DataFrame) -> dict[str, float]:
    """n, Kendall τ, p (τ), Spearman ρ, p (ρ) of the proxy's and the promoted means (NaN below 3 networks)."""
    n, tau, p_tau, rho, p_rho = rank_correlation(table[["proxy mean", "promoted mean"]].dropna())
    return {"networks": n, "Kendall τ": tau, "p (τ)": p_tau, "Spearman ρ": rho, "p (ρ)": p_rho}


def display(table: pd.DataFrame, metric: str = "video@1") -> pd.DataFrame:
    """The comparison with mean ± std (%) over n seeds, ranks and GFLOPs rounded."""

    def pm(m, s, n) -> str:
        return "—" if pd.isna(m) else f"{_pm(m * 100, s * 100)} (n={n})"

    return pd.DataFrame(
        {
            "architecture": table["architecture"],
            "GFLOPs": [_fmt(v, 4 if v < 0.1 else 2) for v in table["GFLOPs"]],
            f"proxy {metric} (%)": [pm(*v) for v in zip(table["proxy mean"], table["proxy std"], table["proxy n"])],
            "proxy rank": [str(r) if pd.notna(r) else "—" for r in table["proxy rank"]],
            f"promoted {metric} (%)": [
                pm(*v) for v in zip(table["promoted mean"], table["promoted std"], table["promoted n"])
            ],
            "promoted rank": [str(r) if pd.notna(r) else "—" for r in table["promoted rank"]],
            "promoted front": table["promoted front"],
        }
    )
