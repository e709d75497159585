"""The papers' claims against a `fidelity` run: one Markdown row per claim, from the run folder.

    python docs/fidelity/claims.py RUN_DIR            # e.g. runs/fidelity

Each network's final video@1 over its seeds (mean ± std). A claim "A beats B" holds when A − B is
larger than the noise of that difference, sqrt(std_A² + std_B²) (one std of the difference of two
seeds); it does not hold when B − A is; otherwise it is within noise. The papers' numbers are quoted
from the seed papers (R(2+1)D Table 2: Kinetics video@1; Res3D Tables 4 and 7: UCF101 clip accuracy).
"""

from __future__ import annotations

import math
import sys

from analysis import load

# (claim, paper's evidence, network that should win, network it should beat)
CLAIMS = [
    ("3D beats per-frame 2D (R(2+1)D Table 2)", "R3D 61.2 vs f-R2D 58.0", "R3D-18", "f-R2D"),
    ("mixed beats reversed-mixed (R(2+1)D Table 2)", "MC3 62.2 vs rMC3 60.6", "MC3", "rMC3"),
    ("(2+1)D beats 3D at equal parameters (R(2+1)D Table 2)", "R(2+1)D 63.9 vs R3D 61.2", "R(2+1)D", "R3D-18"),
    ("sampling rate 2 beats 1 (Res3D Table 4)", "46.3 vs 43.8", "R3D-18", "R3D s=1"),
    ("sampling rate 4 beats 1 (Res3D Table 4)", "46.1 vs 43.8", "R3D s=4", "R3D s=1"),
    ("D18 beats D10 at one budget (Res3D Table 7)", '46.1 vs 45.3 ("D10 somewhat worse")', "R3D-18", "D10"),
    ("D26 beats D10 at one budget (Res3D Table 7)", "46.3 vs 45.3", "D26", "D10"),
]


def main(run_dir: str) -> None:
    df = load([run_dir])
    df = df[df["status"] == "completed"]
    stats = df.groupby("label")["final_video@1"].agg(["mean", "std", "count"]) * [100, 100, 1]
    print("| claim | paper | starch: winner − loser (video@1 %, 3 seeds) | verdict |")
    print("| --- | --- | --- | --- |")
    for claim, paper, a, b in CLAIMS:
        if a not in stats.index or b not in stats.index:
            print(f"| {claim} | {paper} | not in the run | — |")
            continue
        ma, sa, na = stats.loc[a]
        mb, sb, nb = stats.loc[b]
        diff, noise = ma - mb, math.hypot(sa, sb)
        verdict = "holds" if diff > noise else "does not hold" if -diff > noise else "within noise"
        print(
            f"| {claim} | {paper} | {a} {ma:.1f} ± {sa:.1f} vs {b} {mb:.1f} ± {sb:.1f} "
            f"(n = {int(na)}, {int(nb)}): {diff:+.1f} (noise {noise:.1f}) | {verdict} |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
