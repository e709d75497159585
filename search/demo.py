"""`starch demo`: the main job on the embedded default, as a newcomer meets it.

    synthetic motion benchmark (cached) ─► conv-mixture search on a local Ray, 3 seeds per network
        ─► report (figures, ranking) ─► prints where it is and the top of the ranking

    synthetic motion benchmark ─► measure each network's speed here, now (a few real steps)
        ─► epochs that fit --budget-minutes (search.demo_plan) ─► search ─► report

Budgeted in updates, not seconds (a time-cut run would train a different number of updates on a
busy machine): the budget decides, once and before the search, how many epochs every network ×
seed trains (the preset's, or fewer on a slow or busy machine; never fewer networks or seeds).
During the search `--budget-minutes` is only a safety stop; the planned trials it left out are
named on the console and in the report. What was measured and chosen is in RUN_DIR/starch_demo.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from trainers.data.synth import DEFAULT_LEVEL

EXAMPLES = """examples:
  starch demo                          # writes ./starch-demo/{runs,report}
  starch demo --out /tmp/demo --budget-minutes 20
  starch demo --quick                  # 3 networks × 3 epochs on a small dataset (a smoke test)
  starch demo --seed 10 --out demo-s10 # the same demo on seeds 10, 11, 12
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the embedded default: a conv-mixture search on synthetic videos, local Ray, CPU",
        description="Generate the synthetic motion benchmark (once), run a scaled-down Res3D Table 6 search "
        "(2D, mixed, reversed-mixed, 3D and (2+1)D networks, three seeds each) on a local Ray, and write the report.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="starch-demo", metavar="DIR", help="output folder (default: ./starch-demo)")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the synthetic dataset is cached (default: $STARCH_CACHE/synthetic-motion or "
        "~/.cache/starch/synthetic-motion)",
    )
    p.add_argument(
        "--budget-minutes",
        type=float,
        default=15,
        help="the whole demo's time (default 15): each network's speed is measured first and every "
        "network × seed trains fewer epochs if the preset's would not fit; the search stops at the limit",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="the first training seed (default: the preset's schedule.seed, 0); the 3 seeds of each network "
        "are N, N+1, N+2, so a second run with --seed 10 repeats the demo on other seeds",
    )
    p.add_argument("--quick", action="store_true", help="a 1-minute smoke test instead of the full demo")
    p.set_defaults(func=run)


def default_data_dir() -> Path:
    base = Path(os.environ.get("STARCH_CACHE", Path.home() / ".cache" / "starch"))
    return base / "synthetic-motion"


# the benchmark the demo trains on (trainers.data.synth.write_synthetic_dataset's arguments)
DEMO_DATA = dict(classes=8, videos_per_class=200, frames=48, size=(32, 44), seed=0, level=DEFAULT_LEVEL)
QUICK = {
    "space.network": ["f-r2d", "r3d_18", "r2plus1d_18"],
    "schedule.epochs": 3,
    "schedule.eval_every": 1,
    "search.repeats": 1,
}


def run(args) -> int:
    from analysis.report import DEMO_FILE, never_ran
    from analysis.runfolder import write_text
    from search.config import load_experiment
    from search.progress import ProgressPrinter
    from search.run import fit
    from search.search_cli import quiet_ray_logs
    from search.tuner import run_dir
    from trainers.data.synth import write_synthetic_dataset

    start = time.time()
    out = Path(args.out).expanduser().resolve()
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
    synth = {**DEMO_DATA, **({"videos_per_class": 16} if args.quick else {})}
    if args.quick:
        data_dir = data_dir.with_name(data_dir.name + "-quick")
    print(
        f"1/3  synthetic motion benchmark ({synth['classes']} classes × {synth['videos_per_class']} videos) "
        f"in {data_dir} ...",
        flush=True,
    )
    write_synthetic_dataset(data_dir, **synth)
    overrides = demo_overrides(args, data_dir, out)
    exp = load_experiment("demo", overrides=overrides)
    quiet_ray_logs()
    exp, scaling = fit_to_machine(exp, overrides, start, args.budget_minutes * 60, batches=1 if args.quick else 2)
    budget_s = max(60.0, args.budget_minutes * 60 - (time.time() - start))
    print(
        f"2/3  {exp.to_space().size} networks × {exp.search.repeats} seed(s) × {exp.schedule.epochs} epochs "
        f"on a local Ray (safety stop after {budget_s / 60:.0f} min) ...",
        flush=True,
    )
    directory = run_dir(exp)
    record = {"scaling": scaling.to_dict(), "planned": planned_trials(exp)}
    write_text(directory, DEMO_FILE, json.dumps(record, indent=1))
    search_start = time.time()
    directory, results = fit(exp, callbacks=[ProgressPrinter.for_experiment(exp)], time_budget_s=budget_s)
    write_text(directory, DEMO_FILE, json.dumps({**record, "search_s": time.time() - search_start}, indent=1))
    print("3/3  report ...", flush=True)
    from analysis import load, write_report
    from analysis.tables import display_ranking, ranking, to_markdown

    report = write_report([directory], out / "report", metric=exp.search.metric)
    trials = load([directory])
    table = display_ranking(ranking(trials, exp.search.metric), exp.search.metric)
    print()
    print(to_markdown(table.head(10)))
    missing = never_ran(record["planned"], trials, exp.search.metric)
    if missing:
        print(
            f"\nnot in the ranking ({len(missing)} of {len(record['planned'])} planned trials never reported "
            f"{exp.search.metric}; the safety stop cut the search?): {', '.join(missing)}"
        )
    print(f"\nreport: {report}\nrun folder: {directory}\ntook {(time.time() - start) / 60:.1f} min")
    return 0


def demo_overrides(args, data_dir: Path, out: Path) -> dict:
    """The demo preset's overrides for these arguments (data, storage, --quick, --seed)."""
    overrides = {"data.root": str(data_dir), "cluster.storage": str(out / "runs"), **(QUICK if args.quick else {})}
    if args.seed is not None:
        overrides["schedule.seed"] = args.seed
    return overrides


def fit_to_machine(exp, overrides: dict, start: float, budget_s: float, *, batches: int = 2):
    """Start the local Ray, measure each network's speed, and reload the experiment with the epochs
    that fit what is left of the budget (search.demo_plan); returns (experiment, Scaling)."""
    from search.config import load_experiment
    from search.demo_plan import Sizes, fit_to_budget, measure_networks
    from search.run import init_ray, preflight
    from search.tuner import plan

    checked, indexes = preflight(exp)
    init_ray(None, num_cpus=os.cpu_count())
    print("     measuring each network's speed on this machine (a few training and evaluation steps) ...", flush=True)
    candidates = plan(checked).candidates
    data = checked.to_data()
    sizes = Sizes(len(indexes["train"]), len(indexes["test"]), data.eval_clips)
    slots = int((os.cpu_count() or 1) // exp.resources.cpus_per_trial)
    concurrency = max(1, min(len(candidates), slots, exp.resources.max_concurrent_trials or slots))
    speeds, startup = measure_networks(
        candidates, data, indexes, checked.schedule, concurrency=concurrency, batches=batches
    )
    spent = time.time() - start
    scaling = fit_to_budget(
        exp.schedule,
        [c.arch.name for c in candidates],
        speeds,
        sizes,
        budget_s - spent,
        concurrency,
        startup_s=startup,
        spent_s=spent,
    )
    print(f"     {scaling.sentence()}", flush=True)
    if scaling.scaled:
        exp = load_experiment("demo", overrides={**overrides, **scaling.overrides()})
    return exp, scaling


def planned_trials(exp) -> list[dict]:
    """Every trial the grid plans, as the report names it: {"name": "MC3", "repeat": 2, "seed": 2}."""
    from search.tuner import plan

    return [{"name": c.arch.name, "repeat": c.repeat, "seed": c.seed} for c in plan(exp).candidates]
