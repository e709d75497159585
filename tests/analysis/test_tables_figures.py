"""analysis.tables and analysis.figures on the real runs, plus exact cases built by hand."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from scipy import stats

from analysis import figures, tables
from analysis.results import load, load_epochs


@pytest.fixture(scope="module")
def both(runs):
    return load([runs["ucf"], runs["hmdb"]]), load_epochs([runs["ucf"], runs["hmdb"]])


def _frame(rows):
    """A minimal trial frame: dataset, family/label, arch, cost and final video@1."""
    out = []
    for dataset, name, gflops, acc in rows:
        out.append(
            {
                "run": dataset,
                "dataset": dataset,
                "trial_id": f"{dataset}-{name}",
                "family": name,
                "label": name,
                "width": 64,
                "params": 33e6,
                "gflops": gflops,
                "final_video@1": acc,
                "status": "completed",
                "reason": None,
                "arch_key": json.dumps({"name": name}),
                "recipe_key": "{}",
                "sampling_rate": 1,
                "crop": 112,
                "frames": 8,
                "blocks": "2,2,2,2",
                "convs": "",
                "depth": 18,
            }
        )
    return pd.DataFrame(out)


def test_pareto_front():
    x = [1.0, 2.0, 2.0, 3.0, 4.0, 0.5]
    y = [0.5, 0.7, 0.6, 0.65, 0.9, 0.4]
    assert figures.pareto_front(x, y) == [5, 0, 1, 4]


def test_ranking_repeats_as_mean_std_and_errored_last(both):
    trials, _ = both
    rank = tables.ranking(trials, "video@1")
    hmdb = rank[rank["dataset"] == "synth-B"]
    mc3 = trials[(trials["dataset"] == "synth-B") & (trials["family"] == "MC3")]["final_video@1"]
    row = hmdb[hmdb["architecture"] == "MC3 crop=32"].iloc[0]
    assert row["video@1 (%)"] == pytest.approx(mc3.mean() * 100)
    assert row["std (%)"] == pytest.approx(mc3.std(ddof=1) * 100)
    assert row["n"] == 2 and row["status"] == "2 completed"
    ucf = rank[rank["dataset"] == "ucf101"]
    assert list(ucf["status"].iloc[-2:]) == ["errored", "diverged"] and ucf["rank"].iloc[-2:].isna().all()
    assert ucf["video@1 (%)"].iloc[:-2].is_monotonic_decreasing
    shown = tables.display_ranking(rank, "video@1")
    assert list(shown.columns) == [
        "dataset",
        "rank",
        "architecture",
        "k",
        "params (M)",
        "GFLOPs",
        "video@1 (%) ± std",
        "status",
    ]
    assert " ± " in shown[shown["architecture"] == "MC3 crop=32"]["video@1 (%) ± std"].iloc[-1]


def test_sweep_table_is_the_papers_layout(both):
    trials, _ = both
    sweep = tables.sweep_table(trials, "video@1", "ucf101")
    assert list(sweep["Net"]) == ["k", "# params (×10⁶)", "FLOPs (×10⁹)", "video@1 (%)"]
    assert set(sweep.columns[1:]) == {"R3D-18 s=1", "R3D-18 s=2", "MC3 crop=32", "f-R2D"}  # failed left out
    with pytest.raises(ValueError, match="one dataset"):
        tables.sweep_table(trials, "video@1")


def test_consistency_matches_scipy():
    a = [("A", n, g, acc) for n, g, acc in [("r3d", 10, 0.46), ("mc3", 20, 0.45), ("r2d", 5, 0.40), ("d26", 8, 0.47)]]
    b = [
        ("B", n, g, acc)
        for n, g, acc in [("r3d", 10, 0.30), ("mc3", 20, 0.31), ("r2d", 5, 0.20), ("d26", 8, 0.33), ("only_b", 1, 0.1)]
    ]
    out = tables.consistency(_frame(a + b), "video@1").iloc[0]
    tau = stats.kendalltau([0.46, 0.45, 0.40, 0.47], [0.30, 0.31, 0.20, 0.33])
    rho = stats.spearmanr([0.46, 0.45, 0.40, 0.47], [0.30, 0.31, 0.20, 0.33])
    assert out["shared networks"] == 4
    assert out["Kendall τ"] == pytest.approx(tau.statistic) and out["p (τ)"] == pytest.approx(tau.pvalue)
    assert out["Spearman ρ"] == pytest.approx(rho.statistic) and out["p (ρ)"] == pytest.approx(rho.pvalue)


def test_consistency_and_fidelity_on_the_real_runs(both):
    trials, epochs = both
    agree = tables.consistency(trials, "video@1")
    assert agree[["dataset A", "dataset B", "shared networks"]].values.tolist() == [["ucf101", "synth-B", 3]]
    fid = tables.fidelity(epochs, trials, "video@1")
    assert set(fid["dataset"]) == {"ucf101", "synth-B"}
    hmdb = fid[fid["dataset"] == "synth-B"].set_index("epoch")
    assert hmdb.loc[2, "trials"] == 6 and hmdb.loc[2, "Spearman ρ"] == pytest.approx(1.0)
    assert fid[fid["dataset"] == "ucf101"]["trials"].max() == 3  # stopped-early and errored trials left out
    with pytest.raises(ValueError, match="valid: clip@1, video@1, video@5"):
        tables.fidelity(epochs, trials, "accuracy")


def test_markdown_and_latex_rendering():
    table = pd.DataFrame({"net": ["R(2+1)D_18", "a|b"], "acc ± std": ["46.1 ± 0.3", None], "τ": [0.5, float("nan")]})
    md = tables.to_markdown(table)
    assert md.splitlines()[0] == "| net | acc ± std | τ |" and "a\\|b" in md and "| — |" in md
    tex = tables.to_latex(table, caption="50% of k_1")
    assert r"R(2+1)D\_18" in tex and r"$\pm$" in tex and r"50\% of k\_1" in tex and r"\toprule" in tex
    # pandas' Styler writes what the hand-written writer it replaced wrote, to the character
    assert tex == (
        "\\begin{table}[t]\n\\centering\n\\caption{50\\% of k\\_1}\n\\begin{tabular}{lll}\n\\toprule\n"
        "net & acc $\\pm$ std & $\\tau$ \\\\\n\\midrule\n"
        "R(2+1)D\\_18 & 46.1 $\\pm$ 0.3 & 0.5 \\\\\na|b & -- & -- \\\\\n"
        "\\bottomrule\n\\end{tabular}\n\\end{table}\n"
    )
    assert tables.to_latex(table.iloc[:0]).count("\\\\") == 1  # no rows: the header alone


def _overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of point labels (annotations) whose boxes overlap, in any axes of the figure."""
    renderer = fig.canvas.get_renderer()
    clashes = []
    for ax in fig.axes:
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts]
        for i, (ta, a) in enumerate(boxes):
            clashes += [(ta, tb) for tb, b in boxes[i + 1 :] if a.overlaps(b)]
    return clashes


def test_accuracy_vs_flops_one_panel_per_dataset(both):
    trials, _ = both
    fig = figures.accuracy_vs_flops(trials, "video@1")
    assert [ax.get_title() for ax in fig.axes] == ["ucf101", "synth-B"]
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    # networks drawn at one position share a label ("A / B"), as the two R3D-18 do when they score alike
    labels = {part for t in fig.axes[0].texts for part in t.get_text().split(" / ")}
    assert labels == {"R3D-18 s=1", "R3D-18 s=2", "MC3 crop=32", "f-R2D"}
    assert _overlaps(fig) == []
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["MC3", "R3D-18", "f-R2D", "Pareto front"]
    plt.close(fig)


def test_error_bars_stop_at_the_range_of_an_accuracy():
    """Regression (issue 22): a mean of 86.5 % with a seed std of 23.4 points drew a bar up to 109.9 %."""
    rows = [("A", "wobbly", 1.0, acc) for acc in (1.0, 0.5938, 1.0)] + [
        ("A", "flat", 2.0, 0.05),
        ("A", "flat", 2.0, 0.0),
    ]
    fig = figures.accuracy_vs_flops(_frame(rows), "video@1")
    from matplotlib.collections import LineCollection

    bars = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    ends = [y for c in bars for seg in c.get_segments() for _, y in seg]
    assert max(ends) == pytest.approx(100.0) and min(ends) == pytest.approx(0.0)  # clipped at both ends
    assert sorted(ends)[2] == pytest.approx((0.8646 - 0.2344) * 100, abs=0.1)  # a lower end inside the range stays
    plt.close(fig)
    assert figures.clipped_error([0.5, 0.98], [0.1, 0.05]) == [[10.0, 5.0], [10.0, pytest.approx(2.0)]]


def test_crowded_labels_do_not_overlap():
    rows = [("A", f"net{i}", 1 + 0.05 * i, 0.40 + 0.002 * (i % 4)) for i in range(10)]
    fig = figures.accuracy_vs_flops(_frame(rows), "video@1")
    assert len(fig.axes[0].texts) == 10
    assert len(_overlaps(fig)) <= 2  # ten labels in a tiny corner: the placer keeps clashes rare
    plt.close(fig)


def test_accuracy_vs_axis_and_sweep_detection(both):
    trials, _ = both
    assert figures.sweep_axes(trials) == ["sampling_rate"]
    fig = figures.accuracy_vs_axis(trials, "sampling_rate")
    assert [ax.get_title() for ax in fig.axes] == ["ucf101"]  # synth-B has no sampling-rate sweep
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "2"]
    plt.close(fig)
    with pytest.raises(ValueError, match="no family was trained at several values"):
        figures.accuracy_vs_axis(trials, "crop")


def test_training_curves_for_chosen_trials(both):
    trials, epochs = both
    chosen = figures.default_curve_trials(trials, "video@1")
    assert len(chosen) == 6  # the best trial of each of 3 families on 2 datasets
    fig = figures.training_curves(epochs, chosen)
    assert len(fig.axes) == 2
    assert len(fig.axes[1].lines) == 2 * 3  # a train and a test line per trial
    plt.close(fig)
    with pytest.raises(ValueError, match="nothing to plot"):
        figures.training_curves(epochs, [("nope", "nope")])


def _seeds(rows):
    """A trial frame with several seeds per network: (name, [accuracies])."""
    frame = _frame([("d", name, 1.0, acc) for name, accs in rows for acc in accs])
    frame["trial_id"] = [f"t{i}" for i in range(len(frame))]
    return frame


@pytest.mark.parametrize(
    "rows, crowned, words",
    [
        ([("MC2", [0.148, 0.10, 0.13]), ("f-R2D", [0.12, 0.13, 0.11])], False, "No network beat chance (12.5 %)"),
        (
            [("MC3", [0.95, 0.91, 0.93]), ("R3D", [0.93, 0.97, 0.90]), ("f-R2D", [0.12, 0.13, 0.11])],
            False,
            "No single best architecture: R3D (video@1 93.3 ± 3.5 %) and MC3 (video@1 93.0 ± 2.0 %) tie within one std over seeds",
        ),
        (
            [("MC3", [0.95, 0.96, 0.97]), ("R3D", [0.80, 0.82, 0.84]), ("f-R2D", [0.12, 0.13, 0.11])],
            True,
            "MC3 is ahead of every other network by more than one std over seeds",
        ),
    ],
)
def test_verdict_crowns_no_network_within_noise_of_chance_or_the_runner_up(rows, crowned, words):
    rank = tables.ranking(_seeds(rows), "video@1")
    got, sentence = tables.verdict(rank, "video@1", num_classes=8)
    assert got is crowned and words in sentence, sentence


def test_verdict_with_one_seed_uses_the_binomial_error_of_the_test_set():
    rank = tables.ranking(_frame([("d", "MC2", 1.0, 0.148), ("d", "f-R2D", 1.0, 0.108)]), "video@1")
    # 14.8 % over 400 test videos: two binomial standard errors are 3.6 points, so not above chance (12.5 %)
    assert tables.verdict(rank, "video@1", num_classes=8, test_videos=400)[0] is False
    # over 40,000 videos they are 0.36 points: MC2 is above chance and ahead of f-R2D
    assert tables.verdict(rank, "video@1", num_classes=8, test_videos=40_000)[0] is True
