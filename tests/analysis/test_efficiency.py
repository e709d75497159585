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
