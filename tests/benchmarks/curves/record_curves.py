"""Run folder → curves.csv: one row per trial × epoch, read through analysis.results (no Ray, no torch).

    python tests/benchmarks/curves/record_curves.py RUN_DIR OUT.csv

Columns: network (the ArchSpec name, e.g. R3D-18), width, frames, sampling_rate, crop, gflops,
params, epoch, video@1, epoch_time_s. Only trials that ran every planned epoch are kept (a replay
needs whole curves); the script says how many it dropped.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KEYS = ["network", "width", "frames", "sampling_rate", "crop"]


def curves(run_dir: str | Path):
    from analysis.results import load, load_epochs

    trials, epochs = load([run_dir]), load_epochs([run_dir])
    whole = trials[(trials["epochs"] == trials["epochs_planned"]) & (trials["status"] == "completed")]
    cols = ["trial_id", "family", "width", "frames", "sampling_rate", "crop", "gflops", "params"]
    table = (
        whole[cols]
        .rename(columns={"family": "network"})
        .merge(epochs[["trial_id", "epoch", "video@1", "epoch_time_s"]], on="trial_id")
    )
    table = table.sort_values([*KEYS, "epoch"]).drop(columns="trial_id").reset_index(drop=True)
    return table, len(trials) - len(whole)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    table, dropped = curves(argv[0])
    table.to_csv(argv[1], index=False, float_format="%.6g")
    n = table.groupby(KEYS).ngroups
    print(f"{argv[1]}: {n} curves × {table['epoch'].max()} epochs; {dropped} unfinished trial(s) left out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
