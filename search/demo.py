"""`starch demo`: the main job on the embedded default, as a newcomer meets it.

    synthetic motion benchmark (cached) ─► conv-mixture search on a local Ray, 3 seeds per network
        ─► report (figures, ranking) ─► prints where it is and the top of the ranking

Budgeted in updates, not seconds (a time-cut run would train a different number of updates on a
busy machine); `--budget-minutes` is only a safety stop, and the planned trials it left out are
named at the end.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

EXAMPLES = """examples:
  starch demo                          # writes ./starch-demo/{runs,report}
  starch demo --out /tmp/demo --budget-minutes 20
  starch demo --quick                  # 3 networks × 3 epochs on a small dataset (a smoke test)
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
    p.add_argument("--budget-minutes", type=float, default=15, help="stop the search after this long (default 15)")
    p.add_argument("--quick", action="store_true", help="a 1-minute smoke test instead of the full demo")
    p.set_defaults(func=run)


def default_data_dir() -> Path:
    base = Path(os.environ.get("STARCH_CACHE", Path.home() / ".cache" / "starch"))
    return base / "synthetic-motion"


# the benchmark the demo trains on (trainers.data.synth.write_synthetic_dataset's arguments)
DEMO_DATA = dict(classes=8, videos_per_class=200, frames=48, size=(32, 44), seed=0)
QUICK = {
    "space.network": ["f-r2d", "r3d_18", "r2plus1d_18"],
    "schedule.epochs": 3,
    "schedule.eval_every": 1,
    "search.repeats": 1,
}


def run(args) -> int:
    from search.config import load_experiment
    from search.progress import ProgressPrinter
    from search.run import fit, init_ray
    from search.search_cli import quiet_ray_logs
    from search.tuner import plan
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
    overrides = {"data.root": str(data_dir), "cluster.storage": str(out / "runs"), **(QUICK if args.quick else {})}
    exp = load_experiment("demo", overrides=overrides)
    budget_s = max(60.0, args.budget_minutes * 60 - (time.time() - start))
    print(
        f"2/3  {exp.to_space().size} networks × {exp.search.repeats} seed(s) × {exp.to_recipe().epochs} epochs "
        f"on a local Ray (safety stop after {budget_s / 60:.0f} min) ...",
        flush=True,
    )
    quiet_ray_logs()
    init_ray(None, num_cpus=os.cpu_count())
    directory, results = fit(exp, callbacks=[ProgressPrinter.for_experiment(exp)], time_budget_s=budget_s)
    print("3/3  report ...", flush=True)
    from analysis import load, write_report
    from analysis.tables import display_ranking, ranking, to_markdown

    report = write_report([directory], out / "report", metric=exp.search.metric)
    trials = load([directory])
    table = display_ranking(ranking(trials, exp.search.metric), exp.search.metric)
    print()
    print(to_markdown(table.head(10)))
    missing = never_evaluated(exp, trials)
    if missing:
        print(
            f"\nnot in the ranking ({len(missing)} of {len(plan(exp).candidates)} planned trials never reported "
            f"{exp.search.metric}; the safety stop cut the search?): {', '.join(missing)}"
        )
    print(f"\nreport: {report}\nrun folder: {directory}\ntook {(time.time() - start) / 60:.1f} min")
    return 0


def never_evaluated(exp, trials) -> list[str]:
    """The planned trials ("MC3 seed 2") that never reported the metric: a time budget that stops a
    search must not hide them."""
    from search.tuner import plan

    column = f"final_{exp.search.metric}"
    done = {
        (f, r) for f, r, v in zip(trials.get("family", []), trials.get("repeat", []), trials.get(column, [])) if v == v
    }  # NaN: no evaluation
    seed = exp.to_recipe().seed
    return [
        f"{c.arch.name} seed {seed + c.repeat}" for c in plan(exp).candidates if (c.arch.name, c.repeat) not in done
    ]
