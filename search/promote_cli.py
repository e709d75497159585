"""`starch promote RUN_DIR`: train the networks a (cheap) proxy search chose again, under a new
schedule, dataset, seeds or resources, as an ordinary grid experiment (search.promote).

Every refusal (no completed trial, a metric never recorded, K too large, an empty front, a network
that no longer fits the constraints or resources) is one line before Ray starts, and nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis import ACCURACY_METRICS
from search import estimate_cli

EXAMPLES = """examples:
  starch promote runs/proxy --front --dry-run
  starch promote runs/proxy --top 3 --set schedule.epochs=45 --set search.repeats=3
  starch promote runs/proxy --front --data hmdb51:/data/hmdb51 --config longer.yaml --name hmdb-check
  starch promote s3://bucket/runs/proxy --trials 1a2b3_00004,1a2b3_00007 --address auto

The promoted run is the proxy's experiment with its space replaced by the chosen networks (each
ArchSpec as the proxy resolved it: k, blocks, convs, frames, sampling rate, crop), a grid over them
× search.repeats seeds, FIFO; --config (a YAML overlay of sections), --data and --set change the
rest. It is named PROXY-promoted unless --name is given, is resumed with `starch resume`, and its
report compares both rankings (Kendall τ, Spearman ρ, the picks that stayed on the front).
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "promote",
        help="train the best networks of a run again: longer, on other data, with more seeds",
        description="Choose networks from a finished or running search (its Pareto front, its top K or\n"
        "listed trials) and start a new search that trains exactly those architectures under a new\n"
        "schedule, dataset, seeds and resources; its report says how far the first ranking held.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the proxy run folder (STORAGE/NAME or a URI)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--front", action="store_true", help="the Pareto front of the metric vs GFLOPs")
    how.add_argument("--top", type=int, metavar="K", help="the K best networks by mean over seeds")
    how.add_argument("--trials", metavar="ID[,ID...]", help="the networks of these trials")
    p.add_argument("--metric", choices=ACCURACY_METRICS, help="ranking metric (default: the proxy's search.metric)")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML overlay: sections replacing the proxy's fields (schedule:, data:, search:, resources:, …)",
    )
    p.add_argument("--data", metavar="FORMAT:ROOT", help="the new dataset, e.g. hmdb51:/data/hmdb51")
    p.add_argument("--address", help="Ray cluster to join: auto or ray://host:10001 (default: start a local Ray)")
    p.add_argument("--storage", metavar="PATH_OR_URI", help="where runs are written (default: the proxy's)")
    p.add_argument("--name", help="experiment name (default: PROXY-promoted)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one field, e.g. schedule.epochs=45 (value parsed as YAML)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the chosen networks, the new trials and the cost; start nothing"
    )
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    estimate_cli.add_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from analysis.results import combine, read_runs
    from analysis.runfolder import is_uri
    from search import run as runner
    from search.config import read_yaml
    from search.promote import choose, class_count_note, promoted_experiment
    from search.search_cli import _execute, overrides_from_args, print_plan
    from search.tuner import read_experiment

    source = args.run_dir if is_uri(args.run_dir) else str(Path(args.run_dir).expanduser().resolve())
    proxy = read_experiment(source)
    metric = args.metric or (proxy.search.metric if proxy.search.metric in ACCURACY_METRICS else "video@1")
    trials, epochs = combine(read_runs([source]))
    ids = [t.strip() for t in args.trials.split(",") if t.strip()] if args.trials is not None else None
    if ids is not None and not ids:
        raise ValueError("--trials needs trial ids, e.g. --trials 1a2b3_00004,1a2b3_00007 (see starch status RUN_DIR)")
    choices = choose(trials, metric, front=args.front, top=args.top, ids=ids, run=args.run_dir)
    selection = "front" if args.front else f"top {args.top}" if args.top is not None else "trials " + ",".join(ids)
    overlay = None
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"--config {args.config!r} does not exist (a YAML file of sections to change)")
        overlay = read_yaml(path)
    exp = promoted_experiment(
        proxy,
        choices,
        run=source,
        selection=selection,
        metric=metric,
        overlay=overlay,
        overlay_source=str(args.config),
        overrides=overrides_from_args(args),
    )
    checked, indexes = runner.preflight(exp)  # the data, the storage, the local resources: before Ray
    refuse_infeasible(checked, choices)
    print(f"promoting {len(choices)} network(s) of {args.run_dir} ({selection}, by {metric}) to {checked.name}:")
    for c in choices:
        print(f"  {c.label}: {c.why}; proxy trial(s) {', '.join(c.trials)}")
    note = class_count_note(proxy, checked)
    if note:
        print(note)
    achieved = proxy_speeds(proxy, checked, trials, epochs)
    if args.dry_run:
        print_plan(checked)
        estimate_cli.dry_run(checked, indexes, args.assume_tflops, achieved)
        return 0
    announce = estimate_cli.announcer(args.assume_tflops, achieved)
    from search.tuner import run_dir

    start = lambda cb: runner.fit(exp, callbacks=cb, announce=announce)  # noqa: E731
    return _execute(start, exp, run_dir(exp), report=not args.no_report)


CONSTRAINT_FIELDS = {
    "budget": "constraints.budget_tolerance",
    "params": "constraints.max_params",
    "gflops": "constraints.max_gflops",
    "activation_gb": "constraints.max_activation_gb",
    "gpu_memory": "resources.gpu_memory_gb",
}


def refuse_infeasible(exp, choices) -> None:
    """One line naming every chosen network the promoted run's constraints now reject, and the limit."""
    from analysis.results import arch_key
    from search.tuner import plan

    rejected = plan(exp).infeasible
    if not rejected:
        return
    labels = {c.key: c.label for c in choices}
    limits = {**exp.constraints.model_dump(), "gpu_memory_gb": exp.resources.gpu_memory_gb}
    parts = []
    for entry in rejected:
        label = labels.get(arch_key(entry["arch"] or {}), (entry["axes"].get("network") or {}).get("name", "?"))
        fields = [
            f
            for name, f in CONSTRAINT_FIELDS.items()
            if entry["reason"].startswith(name) or f"; {name}" in entry["reason"]
        ]
        given = ", ".join(f"{f} = {limits.get(f.split('.')[1])}" for f in fields)
        parts.append(f"{label}: {entry['reason']}" + (f" ({given})" if given else ""))
    raise ValueError(
        f"{len(rejected)} of {len(choices)} chosen network(s) no longer fit the promoted run: " + "; ".join(parts)
    )


def proxy_speeds(proxy, promoted, trials, epochs) -> tuple[dict[str, float], dict[str, float]] | None:
    """(arch key → the training GFLOP/s each network achieved in the proxy, arch key → its trials'
    seconds outside the training epochs), medians over its completed trials; None when the promoted
    run trains on another kind of device (then the throughput is measured)."""
    if proxy.resources.uses_gpus != promoted.resources.uses_gpus or "achieved_gflops_per_s" not in trials:
        return None
    done = trials[(trials["status"] == "completed") & trials["achieved_gflops_per_s"].notna()]
    if done.empty:
        return None
    trained = epochs.groupby(["run", "trial_id"])["epoch_time_s"].sum()
    outside = done["wall_time_s"] - [trained.get((r, t), 0.0) for r, t in zip(done["run"], done["trial_id"])]
    return (
        {str(k): float(v) for k, v in done.groupby("arch_key")["achieved_gflops_per_s"].median().items()},
        {str(k): max(0.0, float(v)) for k, v in outside.groupby(done["arch_key"]).median().items()},
    )
