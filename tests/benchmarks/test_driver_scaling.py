"""What starch's search driver adds to Ray Tune's own, as the number of trials grows.

Run: pytest -m benchmark -s tests/benchmarks/test_driver_scaling.py
     STARCH_DRIVER_TRIALS=10,100,1000 pytest …   (default 10,100: see the README for why)

For each N, plain Ray Tune and starch each drive N trials of a trainable that reports once and
returns (tests/benchmarks/driver_overhead.py says exactly what each variant runs: the same Optuna
random sampler over the same define-by-run space, one CPU per trial, actor reuse), each driver in
its own process on the session's 2-CPU cluster, the two variants interleaved (tune, starch, tune,
starch, … : 3 rounds for N ≤ 1,000, whose median is robust to one round a noisy machine disturbed;
one of each above). The table gives trials/s, the time per trial, starch's
time per trial ÷ Tune's, the driver's CPU seconds per trial (its own
work, which a loaded machine does not inflate as it does wall time) ÷ Tune's, and the driver's resident memory after fit() minus before (and per trial).
"""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _trials() -> list[int]:
    text = os.environ.get("STARCH_DRIVER_TRIALS", "10,100")
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"STARCH_DRIVER_TRIALS must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"STARCH_DRIVER_TRIALS needs trial counts >= 1, got {text!r}")
    return values


def run_driver(variant: str, trials: int, address: str, storage: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.driver_overhead", "--variant", variant, "--trials", str(trials)]
        + ["--address", address, "--storage", str(storage)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


@pytest.mark.benchmark
@pytest.mark.timeout(4 * 3600)
def test_driver_overhead_as_trials_grow(ray_cluster, tmp_path):
    rows = []
    for n in _trials():
        runs = {"tune": [], "starch": []}
        for round_ in range(3 if n <= 1000 else 1):
            for variant in ("tune", "starch"):
                result = run_driver(variant, n, ray_cluster.address, tmp_path / f"{variant}-{n}-{round_}")
                assert result["trials"] == n and result["errors"] == 0, result
                runs[variant].append(result)
        rows.append((n, runs))
    print(
        f"\n{'trials':>6s} {'driver':7s} {'trials/s':>9s} {'wall s/trial':>13s} {'÷ tune':>7s} "
        f"{'driver CPU s/trial':>19s} {'÷ tune':>7s} {'RSS growth MB':>14s} {'KB/trial':>9s}"
    )
    for n, runs in rows:
        wall = {v: statistics.median(r["fit_s"] / n for r in rs) for v, rs in runs.items()}
        cpu = {v: statistics.median(r["driver_cpu_s"] / n for r in rs) for v, rs in runs.items()}
        for variant, rs in runs.items():
            growth = statistics.median(r["rss_after_mb"] - r["rss_before_mb"] for r in rs)
            print(
                f"{n:6d} {variant:7s} {1 / wall[variant]:9.2f} {wall[variant]:13.3f} {wall[variant] / wall['tune']:6.2f}× "
                f"{cpu[variant]:19.3f} {cpu[variant] / cpu['tune']:6.2f}× {growth:14.1f} {growth * 1024 / n:9.1f}"
            )
    print("(medians over rounds: 3 rounds at N <= 1000, 1 above; each driver a fresh process)")
    assert all(r["fit_s"] > 0 for _, runs in rows for rs in runs.values() for r in rs)


def _fake_trial(i: int, status: str):
    from types import SimpleNamespace

    last = {"epoch": 1, "status": "completed", "arch_name": "R3D", "video@1": 0.5, "train_loss": 1.0, "width": 8}
    return SimpleNamespace(
        trial_id=f"t{i:05d}",
        status=status,
        last_result=last if status != "RUNNING" else {},
        config={"recipe": {"epochs": 1}},
        path=f"/x/t{i}",
        error_file=None,
    )


def _callbacks_time(n: int, directory: Path, min_interval_s: float) -> float:
    """Driver time in starch's callbacks for n trials that start, report once and finish."""
    import io
    import time

    from search.progress import ProgressPrinter, TrialsFileCallback

    files = TrialsFileCallback(str(directory), min_interval_s=min_interval_s)
    progress = ProgressPrinter("video@1", trials=n, epochs=1, file=io.StringIO())
    trials = []
    start = time.perf_counter()
    for i in range(n):
        trial = _fake_trial(i, "RUNNING")
        trials.append(trial)
        for cb in (files, progress):
            cb.on_trial_start(i, trials, trial)
        done = _fake_trial(i, "TERMINATED")
        trials[-1] = done
        progress.on_trial_result(i, trials, done, done.last_result)
        for cb in (files, progress):
            cb.on_trial_complete(i, trials, done)
            cb.on_step_end(i, trials)
    for cb in (files, progress):
        cb.on_experiment_end(trials)
    return time.perf_counter() - start


def _searcher_time(n: int, directory: Path, cached: bool) -> float:
    """Driver time in starch's searcher (Optuna random + constraints + journal) for n samples."""
    import time

    from search.tuner import make_searcher
    from spaces.space import Space
    from tests.benchmarks.driver_overhead import experiment

    exp = experiment(n, str(directory), f"s{n}{cached}")
    original = Space.cached
    if not cached:  # before: every call validated the whole space again
        Space.cached = classmethod(lambda cls, axes, width_rule="nearest": cls(axes=axes, width_rule=width_rule))
    try:
        searcher = make_searcher(exp, str(directory / exp.name))
        searcher.set_search_properties("video@1", "max", {})
        start = time.perf_counter()
        for i in range(n):
            config = searcher.suggest(f"t{i}")
            assert config and "axes" in config["candidate"]
            searcher.on_trial_complete(f"t{i}", {"video@1": 0.5, "training_iteration": 1})
        return time.perf_counter() - start
    finally:
        Space.cached = original


def _optuna_time(n: int, directory: Path, storage: str) -> float:
    """Optuna alone: n ask/tell of the random sampler over the benchmark's space (5 networks ×
    2,000 widths), in the journal file as starch writes it (`driver`: search.tuner.study_storage),
    as Optuna's own file backend writes it (`optuna`: what starch used before), or in memory (what
    plain Tune's OptunaSearch keeps)."""
    import time

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from tests.benchmarks.driver_overhead import NETWORKS, WIDTHS

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from search.tuner import study_storage

    folder = directory / f"optuna-{storage}-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    storage = {
        "driver": lambda: study_storage(str(folder)),
        "optuna": lambda: JournalStorage(JournalFileBackend(str(folder / "optuna_study.log"))),
        "memory": lambda: None,
    }[storage]()
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    start = time.perf_counter()
    for _ in range(n):
        trial = study.ask()
        trial.suggest_categorical("network", list(NETWORKS))
        trial.suggest_categorical("width", list(WIDTHS))
        study.tell(trial, 0.5)
    return time.perf_counter() - start


@pytest.mark.benchmark
@pytest.mark.timeout(3600)
def test_driver_parts_per_trial_without_ray(tmp_path):
    """starch's driver-side parts alone (no Ray): per-trial time as N grows, before and after the
    fixes (a Space validated per call; starch_trials.json rewritten on every event; the journal's
    fsync and read-back per operation)."""
    sizes = _trials() if os.environ.get("STARCH_DRIVER_TRIALS") else [10, 100, 1000]
    print(f"\n{'part':48s} " + " ".join(f"{f'N={n} ms/trial':>16s}" for n in sizes))
    rows = {
        "callbacks (trials file + progress), before": [
            _callbacks_time(n, tmp_path / f"b{n}", 0.0) * 1e3 / n for n in sizes
        ],
        "callbacks (trials file + progress), after": [
            _callbacks_time(n, tmp_path / f"a{n}", 1.0) * 1e3 / n for n in sizes
        ],
        "searcher (Optuna + constraints), before": [
            _searcher_time(n, tmp_path, cached=False) * 1e3 / n if n <= 10 else float("nan") for n in sizes
        ],
        "searcher (Optuna + constraints), after": [_searcher_time(n, tmp_path, cached=True) * 1e3 / n for n in sizes],
        "Optuna ask/tell alone, Optuna's journal file": [_optuna_time(n, tmp_path, "optuna") * 1e3 / n for n in sizes],
        "Optuna ask/tell alone, starch's journal file": [_optuna_time(n, tmp_path, "driver") * 1e3 / n for n in sizes],
        "Optuna ask/tell alone, in memory (Tune's)": [_optuna_time(n, tmp_path, "memory") * 1e3 / n for n in sizes],
    }
    for part, values in rows.items():
        print(f"{part:48s} " + " ".join(f"{v:16.2f}" for v in values))
    print("(before: NaN above N = 10, where one sample took seconds)")
    assert all(v > 0 for values in rows.values() for v in values if v == v)
