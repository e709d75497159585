"""MO-ASHA vs NSGA-II+FIFO vs ASHA(video@1) vs random+FIFO on recorded learning curves.

    python -m pytest -m benchmark -s tests/benchmarks/test_moasha_hypervolume.py

Replays tests/benchmarks/curves/curves.csv (24 real starch trials, see curves/record.yaml) through
starch's searchers and schedulers on a simulated 4-worker cluster (moasha_replay.py), 10 seeds,
each method with the epochs that NSGA-II+FIFO spends on 12 whole trials. Prints the table that the
README quotes; asserts only what must hold whatever the numbers (no timings, no expected winner).
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import moasha_replay as replay  # noqa: E402

SEEDS, FIFO_TRIALS = range(10), 12  # half the recorded grid's 24 networks, as 24 of 48 before


@pytest.mark.benchmark
def test_moasha_hypervolume_against_the_baselines():
    from analysis.tables import to_markdown

    curves = replay.load_curves()
    traces = replay.run_benchmark(SEEDS, fifo_trials=FIFO_TRIALS, curves=curves)
    epochs = int(next(iter(curves.values()))["epoch"].max())
    budget = FIFO_TRIALS * epochs
    for label, runs in traces.items():
        # every method had the same epochs; one that ran every point of the space may end before
        assert all(t.epochs[-1] <= budget for t in runs), label
        assert all(t.epochs[-1] == budget or t.trials >= len(curves) for t in runs), label
        assert all(0 <= h <= 1.1 for t in runs for h in t.hv)
    for label in ("random + ASHA (video@1)", "random + MO-ASHA", "NSGA-II + MO-ASHA"):  # they stop trials early
        assert min(t.trials for t in traces[label]) > max(t.trials for t in traces["random + FIFO"])
    table = replay.summary(traces)
    print(
        f"\n{len(curves)} recorded curves × {epochs} epochs, {len(SEEDS)} seeds, budget {budget} epochs "
        f"({FIFO_TRIALS} whole trials), 4 simulated workers; reference: NSGA-II + FIFO's final hypervolume\n"
    )
    print(to_markdown(table))


@pytest.mark.benchmark
@pytest.mark.timeout(1800)
def test_the_same_replay_through_a_real_tune_run(ray_cluster, tmp_path):
    """Cross-check of the simulator: seed 0 of two methods replayed by a trainable that reports the
    recorded curve without training, through tune.Tuner (the order of results is Ray's own)."""
    import pandas as pd

    from analysis.tables import to_markdown

    curves = replay.load_curves()
    epochs = int(next(iter(curves.values()))["epoch"].max())
    budget = FIFO_TRIALS * epochs
    rows = []
    for label in ("random + MO-ASHA", "NSGA-II + FIFO"):
        algorithm, scheduler = replay.METHODS[label]
        exp = replay.experiment(algorithm, scheduler, 0, epochs=epochs)
        real = replay.tune_replay(exp, curves, budget=budget, population=8, storage=str(tmp_path))
        sim = replay.simulate(exp, curves, budget=budget, population=8)
        # the budget stopper ended the Tune run after the same epochs, or every point of the space had run
        assert len(real.epochs) == budget or (len(real.epochs) < budget and real.trials >= len(curves))
        if scheduler == "moasha":
            assert real.trials > FIFO_TRIALS  # MO-ASHA stopped trials under Tune too
        rows.append(
            {
                "method (seed 0)": label,
                "Tune: trials": real.trials,
                "Tune: final HV": round(real.hv[-1], 3),
                "simulated: trials": sim.trials,
                "simulated: final HV": round(sim.hv[-1], 3),
            }
        )
    print("\n" + to_markdown(pd.DataFrame(rows)))
