"""The efficiency table: per architecture, the medians of what its trials recorded."""

import math

import pandas as pd

from analysis import tables


def test_efficiency_per_architecture_medians_most_efficient_first():
    trials = pd.DataFrame(
        {
            "dataset": ["d"] * 4,
            "label": ["R3D", "R3D", "R3D", "f-R2D"],
            "gflops": [0.1, 0.1, 0.1, 0.2],
            "achieved_gflops_per_s": [2.0, 4.0, 6.0, 30.0],
            "peak_gflops_per_s": [70.0, 70.0, 70.0, 60.0],
            "efficiency": [2 / 70, 4 / 70, 6 / 70, 0.5],
        }
    )
    table = tables.efficiency(trials)
    assert list(table["architecture"]) == ["f-R2D", "R3D"]
    r3d = table.set_index("architecture").loc["R3D"]
    assert r3d["trials"] == 3 and r3d["achieved_gflops_per_s"] == 4.0 and math.isclose(r3d["efficiency"], 4 / 70)


def test_no_efficiency_column_gives_an_empty_table():
    assert tables.efficiency(pd.DataFrame({"label": ["x"], "dataset": ["d"]})).empty


def test_phase_shares_divide_each_trials_wall_time_and_reach_the_efficiency_table():
    from analysis.report import Document, _efficiency
    from analysis.results import phase_shares

    records = [
        {"epoch": 1, "phase_setup_s": 2.0, "phase_data_s": 1.0, "phase_forward_s": 3.0, "epoch_wall_s": 8.0},
        {"epoch": 2, "phase_setup_s": 0.0, "phase_data_s": 1.0, "phase_forward_s": 5.0, "epoch_wall_s": 8.0},
        {"epoch": 3, "status": "diverged"},  # no phase times: left out of both sums
    ]
    shares = phase_shares(records)
    assert list(shares) == ["phase_setup_share", "phase_data_share", "phase_forward_share", "phase_other_share"]
    assert shares["phase_data_share"] == 2 / 16 and shares["phase_forward_share"] == 8 / 16
    assert math.isclose(shares["phase_other_share"], 4 / 16)
    assert phase_shares([{"epoch": 1, "train_loss": 1.0}]) == {}  # a trial recorded before issue 25

    trials = pd.DataFrame(
        {
            "dataset": ["d"] * 3,
            "label": ["R3D", "R3D", "MC3"],
            "gflops": [0.1, 0.1, 0.2],
            "achieved_gflops_per_s": [2.0, 4.0, 30.0],
            "peak_gflops_per_s": [70.0] * 3,
            "efficiency": [2 / 70, 4 / 70, 30 / 70],
            "phase_data_share": [0.1, 0.3, 0.5],
            "phase_forward_share": [0.6, 0.4, 0.3],
        }
    )
    table = tables.efficiency(trials).set_index("architecture")
    assert table.loc["R3D", "phase_data_share"] == 0.2 and table.loc["MC3", "phase_forward_share"] == 0.3

    doc = Document("report")
    _efficiency(doc, trials)
    text = doc.markdown()
    header = next(line for line in text.splitlines() if line.startswith("| dataset"))
    assert header.rstrip(" |").endswith("efficiency | data | forward")
    assert "| 50% | 30% |" in text and "| 20% | 50% |" in text and "Where the time went" in text
