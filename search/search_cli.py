"""`starch search`, `starch resume`, `starch status`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from search import estimate_cli

SEARCH_EXAMPLES = """examples:
  starch search --list-presets
  starch search res3d-conv-mixture --data ucf101:/data/ucf101 --dry-run
  starch search res3d-conv-mixture --data ucf101:/data/ucf101 --address auto --storage /nfs/runs
  starch search experiments/my_study.yaml --set search.algorithm=tpe --set search.num_samples=40
  ray job submit --address http://head:8265 -- starch search joint --data ucf101:/data/ucf101 --address auto

Without --address a local Ray starts (dashboard on localhost only). Ctrl-C stops the run; it can be
continued with `starch resume RUN_DIR`. When the run ends the report is written to RUN_DIR/report/.
"""


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "search",
        help="run an architecture search (a Ray Tune experiment)",
        description="Validate an experiment (YAML file or preset name), expand its space "
        "and run every trial as a Ray Tune trial.",
        epilog=SEARCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("experiment", nargs="?", help="experiment YAML file or preset name")
    p.add_argument("--list-presets", action="store_true", help="list the presets (the papers' sweeps) and exit")
    p.add_argument(
        "--data", metavar="FORMAT:ROOT", help="dataset, e.g. ucf101:/data/ucf101 (overrides data.format/root)"
    )
    p.add_argument("--address", help="Ray cluster to join: auto or ray://host:10001 (default: start a local Ray)")
    p.add_argument("--storage", metavar="PATH_OR_URI", help="where runs are written (NFS or s3://… for clusters)")
    p.add_argument("--name", help="experiment name (the run folder is STORAGE/NAME)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one field, e.g. search.num_samples=20 (value parsed as YAML)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="validate and print the trial list and the cost estimate, start nothing"
    )
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    estimate_cli.add_arguments(p)
    p.set_defaults(func=run_search)

    r = subparsers.add_parser(
        "resume",
        help="continue a search whose driver stopped or was killed",
        description="Restore a run with Tuner.restore: unfinished trials continue from "
        "their last checkpoint, errored ones are retried, the searcher keeps its history.",
        epilog="example:\n  starch resume runs/res3d-conv-mixture --address auto",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("run_dir", help="the run folder (STORAGE/NAME)")
    r.add_argument("--address", help="Ray cluster to join (default: start a local Ray)")
    r.add_argument("--no-report", action="store_true")
    r.set_defaults(func=run_resume)

    s = subparsers.add_parser(
        "status",
        help="list the trials of a run: state, epoch, metric, errors",
        description="List the trials of a run with their state (completed, stopped early, "
        "running, errored, diverged, infeasible), epoch, metric and why each failed. "
        "Reads only the run folder: works while the run goes on, after a crash, without Ray.",
        epilog="examples:\n  starch status runs/res3d-conv-mixture\n"
        "  starch status runs/res3d-conv-mixture --json | jq .state",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("run_dir", help="the run folder (STORAGE/NAME)")
    s.add_argument("--json", action="store_true", help="one JSON object per trial")
    s.set_defaults(func=run_status)


def overrides_from_args(args) -> dict:
    from search.config import parse_yaml

    out: dict = {}
    if args.data:
        fmt, sep, root = args.data.partition(":")
        if not sep or not root:
            raise ValueError(f"--data must look like FORMAT:ROOT (e.g. ucf101:/data/ucf101), got {args.data!r}")
        out["data.format"], out["data.root"] = fmt, root
    if args.name:
        out["name"] = args.name
    if args.storage:
        out["cluster.storage"] = args.storage
    if args.address:
        out["cluster.address"] = args.address
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"--set needs SECTION.KEY=VALUE (e.g. search.num_samples=20), got {item!r}")
        out[key] = parse_yaml(value, f"--set {item}")
    return out


def gpu_share_note(exp) -> str:
    """The line above the trial table under gpus_per_trial: auto: what the shares are made of."""
    r = exp.resources
    if r.gpu_memory_gb is None:
        return "GPU shares: decided when the run starts (each GPU node's free memory is read then)"
    return (
        f"GPU shares: {r.gpu_memory_gb:g} GiB per GPU less {r.gpu_memory_headroom:.0%} headroom, each trial "
        f"charged its predicted peak + {r.gpu_process_overhead_gb:g} GiB per process, at most "
        f"{r.max_trials_per_gpu} trial(s) per GPU"
    )


def gpu_share_text(arch, exp) -> str:
    """', GPU 0.25 (4 share a GPU)' for a trial of `arch` under gpus_per_trial: auto; '' otherwise."""
    from search.gpu_packing import share_of

    got = share_of(arch, exp) if exp.resources.auto_gpus and arch is not None else None
    if got is None:
        return ""
    share, n = got
    return f", GPU {share:g} ({n} share a GPU)" if n > 1 else ", GPU 1 (a GPU to itself)"


def print_plan(exp) -> None:
    from search.tuner import plan
    from spaces import cost

    space = exp.to_space()
    p = plan(exp)
    print(
        f"experiment {exp.name}: {exp.search.algorithm} search over {space.size} point(s) "
        f"({', '.join(space.varying()) or 'no varying axis'}), scheduler {exp.scheduler.type}"
    )
    if exp.scheduler.type == "moasha":
        from search.moasha import make_moasha

        print(f"MO-ASHA: {make_moasha(exp).describe()}")
    if exp.search.algorithm == "expand":
        from search.expand import describe_plan

        print("\n".join(describe_plan(exp)))
        return
    if exp.search.algorithm == "grid":
        print(f"{p.feasible} trial(s) ({exp.search.repeats} repeat(s) each), {len(p.infeasible)} infeasible point(s)")
        rows = [(c.axes, c.arch, None) for c in p.candidates if c.repeat == 0]
    else:
        from search.constraints import check_point

        print(f"{exp.search.num_samples} trial(s) will be sampled from these points:")
        rows = [(pt, *check_point(exp, space, pt)) for pt in space.grid()]
    rows += [(i["axes"], None, i["reason"]) for i in p.infeasible]
    varying = space.varying()
    if exp.resources.auto_gpus:
        print(gpu_share_note(exp))
    print(f"{'#':>3}  {'network':12s} {'axes':28s} {'k':>5s} {'params':>9s} {'GFLOPs':>8s}  status")
    for n, (axes, arch, why) in enumerate(rows, 1):
        shown = " ".join(f"{a}={axes[a]}" for a in varying if a != "network")
        if arch is None:
            arch = _arch_or_none(space, axes)
        c = cost(arch) if arch is not None else None
        print(
            f"{n:>3}  {space.label(axes):12s} {shown:28s} {arch.width if arch else '-':>5} "
            f"{(f'{c.mparams:.2f}M' if c else '-'):>9s} {(f'{c.gflops:.2f}' if c else '-'):>8s}  "
            f"{'infeasible: ' + why if why else 'ok' + gpu_share_text(arch, exp)}"
        )


def _arch_or_none(space, axes):
    try:
        return space.to_arch(axes)
    except ValueError:
        return None


def run_search(args) -> int:
    from search.config import list_presets, load_experiment  # pydantic: not for `starch --help`

    if args.list_presets:
        for name in list_presets():
            exp = load_experiment(name)
            print(f"{name:22s} {exp.description.splitlines()[0] if exp.description else ''}")
        return 0
    if not args.experiment:
        raise ValueError("starch search needs an experiment file or preset name (see --list-presets)")
    exp = load_experiment(args.experiment, overrides=overrides_from_args(args))
    from search import run

    if args.dry_run:
        if exp.data.root == run.DATA_PLACEHOLDER:
            if not exp.cluster.address:
                exp = run.check_resources(exp, run.local_resources(exp))
            run.check_storage(exp.cluster.storage)
            print(
                "note: no dataset given (--data FORMAT:ROOT): widths are solved for the space's "
                "num_classes, and the data is not checked"
            )
            print_plan(exp)
            estimate_cli.dry_run(exp, None, args.assume_tflops)
        else:
            checked, indexes = run.preflight(exp)
            if not checked.cluster.address:  # the shares this machine's GPUs give (a cluster's are known at the run)
                checked = run.check_resources(checked, run.local_resources(checked))
            print_plan(checked)
            estimate_cli.dry_run(checked, indexes, args.assume_tflops)
        return 0
    from search.tuner import run_dir

    announce = estimate_cli.announcer(args.assume_tflops)
    start = lambda cb: run.fit(exp, callbacks=cb, announce=announce)  # noqa: E731
    return _execute(start, exp, run_dir(exp), report=not args.no_report)


def run_resume(args) -> int:
    from search import run
    from search.tuner import read_experiment

    exp = read_experiment(args.run_dir)
    exp = exp.updated(cluster={**exp.cluster.model_dump(), "address": args.address})
    start = lambda cb: run.resume(args.run_dir, callbacks=cb, exp=exp)  # noqa: E731
    return _execute(start, exp, args.run_dir, report=not args.no_report)


def _execute(start, exp, directory: str, *, report: bool) -> int:
    """Run (start Ray, fit or restore), print the outcome, write the report; the exit code says
    how it went: 0 some trial completed, 1 none did, 130 interrupted (resume to continue)."""
    from search.progress import ProgressPrinter

    quiet_ray_logs()
    try:
        directory, results = start([ProgressPrinter.for_experiment(exp)])
    except Exception as exc:
        from analysis.runfolder import path_error

        found = path_error(exc)
        if found is None:
            raise
        path, message, hint = found
        print(
            f"starch: error: {path or directory}: {message}; {hint}, then continue with "
            f"`starch resume {directory}` (finished trials and their checkpoints are kept)",
            file=sys.stderr,
        )
        return 1
    errored = [r for r in results if r.error is not None]
    trials = _trials(directory)
    unfinished = sum(t["status"] not in ("TERMINATED", "ERROR") for t in trials)
    succeeded = [t for t in trials if t["status"] == "TERMINATED" and t.get("run_status") in ("completed", "running")]
    print(f"\nrun folder: {directory}")
    print(f"{len(results)} trial(s), {len(errored)} errored")
    if unfinished:
        print(f"{unfinished} trial(s) did not finish (interrupted?); continue with: starch resume {directory}")
    if report:
        _report(directory, exp.search.metric)
    if unfinished:
        return 130
    if not succeeded:
        print(
            f"starch: error: no trial completed ({_failure_summary(trials)}); see starch status {directory}",
            file=sys.stderr,
        )
        return 1
    return 0


def _trials(directory: str) -> list[dict]:
    from analysis.runfolder import TRIALS_FILE, read_text

    text = read_text(directory, TRIALS_FILE)
    return [] if text is None else json.loads(text)


def _failure_summary(trials: list[dict]) -> str:
    """'3 errored, 1 diverged; first error: ValueError: …' (what a failed run's one line says)."""
    kinds: dict[str, int] = {}
    for t in trials:
        kind = "errored" if t["status"] == "ERROR" else t.get("run_status") or t["status"].lower()
        kinds[kind] = kinds.get(kind, 0) + 1
    first = next((t["error"] for t in trials if t.get("error")), None)
    counts = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "no trial ran"
    return counts + (f"; first error: {first}" if first else "")


def quiet_ray_logs() -> None:
    """Our ProgressPrinter says what happens; Ray's INFO lines would drown it, and so would Tune's
    traceback of every failed trial (the printer names the error and its error.txt instead)."""
    import os

    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _report(directory: str, metric: str) -> None:
    from analysis import ACCURACY_METRICS
    from analysis.remote import default_report_dir
    from analysis.report import write_report

    # the report ranks by an accuracy; a search on loss or GFLOPs is reported by video@1
    out = write_report(
        [directory], default_report_dir(directory), metric=metric if metric in ACCURACY_METRICS else "video@1"
    )
    print(f"report: {out}")


def run_status(args) -> int:
    """Trials of a run, read from its folder (works while it runs, after a crash, without Ray)."""
    from analysis import load
    from analysis.remote import fetch
    from analysis.runfolder import EXPERIMENT_FILE, TRIALS_FILE, is_uri, read_text

    directory = fetch(args.run_dir) if is_uri(args.run_dir) else Path(args.run_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"run folder {str(directory)!r} does not exist")
    notes, metric = [], "video@1"
    text = read_text(directory, EXPERIMENT_FILE)
    try:
        metric = (json.loads(text).get("search") or {}).get("metric", "video@1") if text is not None else metric
    except (ValueError, AttributeError):
        notes.append(f"{directory / EXPERIMENT_FILE} is not valid JSON (torn by a full disk?); metric shown: {metric}")
    df = load([directory])
    cols = {
        "trial_id": "trial",
        "label": "network",
        "width": "k",
        "status": "state",
        "epochs": "epoch",
        f"final_{metric}": metric,
        "reason": "why",
    }
    table = df[[c for c in cols if c in df.columns]].rename(columns=cols)
    if args.json:
        for row in table.to_dict("records"):
            print(json.dumps({k: (None if v != v else v) for k, v in row.items()}, default=str))
        return 0
    counts = table["state"].value_counts().to_dict() if len(table) else {}
    shown = [f"{n} {s}" for s, n in counts.items()]
    lost = int(df["preemptions"].sum()) if "preemptions" in df else 0
    if lost:
        shown.append(f"{int((df['preemptions'] > 0).sum())} preempted ({lost} lost node(s), not counted as failures)")
    print(f"{args.run_dir}: {len(table)} trial(s): " + ", ".join(shown))
    if len(table):
        print(_as_percent(table, metric).to_string(index=False, na_rep=""))
    notes += [*df.attrs.get("notes", []), *df.attrs.get("skipped", [])]
    running = int((table["state"] == "running").sum()) if len(table) else 0
    if running:  # the file says what the driver last wrote; a driver that died wrote no more
        age = time.time() - (directory / TRIALS_FILE).stat().st_mtime if (directory / TRIALS_FILE).is_file() else None
        notes.append(
            f"{running} trial(s) running as of the driver's last write"
            f"{f' {age:.0f} s ago' if age is not None else ''}; if its driver is no longer running (killed, "
            f"or its disk filled) they are not: continue them with `starch resume {args.run_dir}`"
        )
    for note in notes:
        print(f"note: {note}")
    return 0


def _as_percent(table, metric: str):
    """An accuracy column as the report shows it: `video@1 (%)` with one decimal, blank when unknown."""
    from analysis import ACCURACY_METRICS

    if metric not in ACCURACY_METRICS or metric not in table.columns:
        return table
    values = table[metric].map(lambda v: f"{float(v) * 100:.1f}" if v is not None and v == v else "")
    return table.assign(**{metric: values}).rename(columns={metric: f"{metric} (%)"})
