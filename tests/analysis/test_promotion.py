"""A promoted run against its proxy (analysis.promotion) on hand-made trial tables."""

import math

import pandas as pd
import pytest

from analysis import figures, promotion


def trials(run: str, rows: dict[str, tuple[float, list[float]]], status: str = "completed") -> pd.DataFrame:
    """network → (GFLOPs, accuracies of its seeds) as analysis.load's columns."""
    out = []
    for name, (gflops, accs) in rows.items():
        for seed, acc in enumerate(accs):
            out.append(
                {
                    "run": run,
                    "dataset": run,
                    "trial_id": f"{run}-{name}-{seed}",
                    "label": name,
                    "family": name,
                    "width": 4,
                    "params": 1e4,
                    "gflops": gflops,
                    "final_video@1": acc,
                    "status": status,
                    "reason": None,
                    "recipe_key": run,
                    "arch_key": f'{{"name": "{name}"}}',
                }
            )
    return pd.DataFrame(out)


PROXY = trials("proxy", {"A": (1.0, [0.5, 0.6]), "B": (2.0, [0.7, 0.7]), "C": (3.0, [0.8, 0.9]), "D": (4.0, [0.1])})


def test_the_two_rankings_side_by_side_with_the_front_kept_or_fell_off():
    promoted = trials("long", {"A": (1.0, [0.6, 0.7]), "B": (2.0, [0.9, 0.8]), "C": (3.0, [0.75, 0.75])})
    table = promotion.comparison(PROXY, promoted)
    assert list(table["architecture"]) == ["C", "B", "A"]  # by the proxy's rank; D was not promoted
    assert list(table["proxy rank"]) == [1, 2, 3] and list(table["promoted rank"]) == [2, 1, 3]
    assert table.loc[0, "proxy mean"] == pytest.approx(0.85) and table.loc[0, "proxy std"] == pytest.approx(
        0.0707, abs=1e-4
    )
    # promoted front: A (cheapest), B (more accurate than A); C costs more than B and is worse
    assert list(table["promoted front"]) == ["fell off the front", "stayed on the front", "stayed on the front"]
    stats = promotion.agreement(table)
    assert stats["networks"] == 3 and stats["Kendall τ"] == pytest.approx(1 / 3) and 0 < stats["p (τ)"] <= 1
    shown = promotion.display(table)
    assert (
        shown.loc[0, "proxy video@1 (%)"] == "85.0 ± 7.1 (n=2)"
        and shown.loc[0, "promoted video@1 (%)"] == "75.0 ± 0.0 (n=2)"
    )
    fig = figures.proxy_vs_promoted(table, proxy="proxy", promoted="long")
    assert "Kendall τ 0.33 over 3 network(s)" in fig.axes[0].get_title()


def test_a_network_without_a_completed_promoted_trial_is_shown_but_not_ranked():
    promoted = pd.concat(
        [
            trials("long", {"A": (1.0, [0.6]), "B": (2.0, [0.9])}),
            trials("long", {"C": (3.0, [0.4])}, status="running"),  # its accuracy so far is not the schedule's
        ]
    )
    table = promotion.comparison(PROXY, promoted)
    row = table[table["architecture"] == "C"].iloc[0]
    assert math.isnan(row["promoted mean"]) and row["promoted front"] == "no completed trial yet"
    assert promotion.agreement(table)["networks"] == 2 and math.isnan(promotion.agreement(table)["Kendall τ"])
    with pytest.raises(ValueError, match="no network has video@1 in both runs"):
        figures.proxy_vs_promoted(promotion.comparison(PROXY, trials("x", {"E": (1.0, [0.5])})))
