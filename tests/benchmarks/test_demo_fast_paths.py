"""The quick demo's trials with the CPU fast paths off and on: wall time and the numbers they train to.

Run: pytest -m benchmark -s tests/benchmarks/test_demo_fast_paths.py
     STARCH_DEMO_ROUNDS=3 pytest …   (default 2)

`starch demo --quick` without Ray: its experiment (the demo preset with the --quick overrides:
f-R2D, R3D and R(2+1)D, one seed, 3 epochs, on its 8-class × 16-video synthetic benchmark) is
planned exactly as the demo plans it, and each planned trial runs through `run_trial` in this
process on one thread (a one-CPU Ray trial), one after another. "off" is STARCH_CHANNELS_LAST=0
(contiguous tensors; the in-place ReLUs cannot be switched off), "on" the default rule. The rounds
interleave off and on; the table gives each round's wall time and the ratio on ÷ off, and each
network's final video@1 and train loss under both (identical seeds: the memory format only
reorders float sums, so they should agree within seed noise).
"""

import os
import statistics
import time

import pytest
import torch


def _trials(data_dir):
    from search.config import load_experiment
    from search.demo import QUICK
    from search.run import with_dataset_classes
    from search.tuner import plan
    from trainers.data.datasets import build_index
    from trainers.trial import TrialConfig

    exp = load_experiment("demo", overrides={"data.root": str(data_dir), **QUICK})
    data = exp.to_data()
    indexes = {"train": build_index(data, "train"), "test": build_index(data, "test")}
    exp = with_dataset_classes(exp, indexes)
    recipe = exp.schedule
    return [TrialConfig(c.arch, data, recipe) for c in plan(exp).candidates], indexes


def _run_all(configs, indexes, channels_last: str) -> tuple[float, dict]:
    from trainers.trial import run_trial

    os.environ["STARCH_CHANNELS_LAST"] = channels_last
    finals = {}
    start = time.perf_counter()
    for cfg in configs:
        records = []
        run_trial(cfg, lambda r, s: records.append(r), indexes=indexes)
        finals[cfg.arch.name] = (records[-1].get("video@1"), records[-1]["train_loss"])
    return time.perf_counter() - start, finals


@pytest.mark.benchmark
@pytest.mark.timeout(3 * 3600)
def test_quick_demo_trials_with_fast_paths_off_and_on(tmp_path, monkeypatch):
    from search.demo import DEMO_DATA
    from trainers.synth import write_synthetic_dataset

    data_dir = tmp_path / "synthetic-motion-quick"
    write_synthetic_dataset(data_dir, **{**DEMO_DATA, "videos_per_class": 16})
    configs, indexes = _trials(data_dir)
    monkeypatch.setenv("STARCH_CHANNELS_LAST", "0")  # restored after the test
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    walls = {"0": [], "1": []}
    finals = {}
    try:
        for _ in range(int(os.environ.get("STARCH_DEMO_ROUNDS", "2"))):
            for setting in ("0", "1"):
                wall, finals[setting] = _run_all(configs, indexes, setting)
                walls[setting].append(wall)
                print(f"\nchannels_last={setting}: {wall:.1f} s", flush=True)
    finally:
        torch.set_num_threads(threads)
    ratios = [on / off for off, on in zip(walls["0"], walls["1"])]
    print(f"\n{len(configs)} trials × {configs[0].recipe.epochs} epochs, one thread, rounds interleaved")
    print(f"{'fast paths':10s} " + " ".join(f"{f'round {i + 1} s':>11s}" for i in range(len(ratios))) + "  median s")
    for setting, label in (("0", "off"), ("1", "on")):
        print(
            f"{label:10s} "
            + " ".join(f"{w:11.1f}" for w in walls[setting])
            + f"  {statistics.median(walls[setting]):8.1f}"
        )
    print(f"on ÷ off per round: {' / '.join(f'{r:.2f}' for r in ratios)}")
    print(f"{'network':12s} {'video@1 off':>12s} {'video@1 on':>11s} {'loss off':>9s} {'loss on':>8s}")
    for name in finals["0"]:
        (v0, l0), (v1, l1) = finals["0"][name], finals["1"][name]
        print(f"{name:12s} {v0:12.3f} {v1:11.3f} {l0:9.3f} {l1:8.3f}")
    assert all(w > 0 for ws in walls.values() for w in ws)
