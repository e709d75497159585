"""`starch report`: the report folder of one or more finished (or unfinished) runs.

Wired into the `starch` command by search/cli.py through `add_parser(subparsers)`; the handler
raises ValueError / FileNotFoundError with a message naming the folder, which the CLI prints as
one line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis import ACCURACY_METRICS, FIGURE_FORMATS

EXAMPLES = """examples:
  starch report runs/conv_mixture
  starch report runs/conv_mixture runs/conv_mixture_hmdb --out report/
  starch report runs/depth --metric clip@1 --out report_depth/ --formats png,pdf
  starch report runs/a runs/b --dataset UCF101 --dataset HMDB51

The report folder holds report.md, report.html (self-contained: figures embedded), figures/
(PNG and SVG) and tables/ (Markdown, CSV, LaTeX). Unfinished or partly failed runs are fine:
what could not be read is listed under "What was skipped or inferred".
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="plots, ranking tables and a report from run folders",
        description="Read Ray Tune run folders written by `starch search` and write a report: accuracy vs\n"
        "GFLOPs with the Pareto front, one-axis sweeps, training curves, ranking and sweep tables,\n"
        "cross-dataset rank consistency and early-stopping fidelity. Needs neither torch nor Ray.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folder(s): STORAGE/NAME of a search")
    p.add_argument("--out", metavar="DIR", help="report folder (default: RUN_DIR/report of the first run)")
    p.add_argument(
        "--metric", choices=ACCURACY_METRICS, help="ranking metric (default: the experiment's metric, else video@1)"
    )
    p.add_argument(
        "--dataset",
        action="append",
        metavar="NAME",
        help="dataset label of each RUN_DIR, in order (default: read from the run)",
    )
    p.add_argument(
        "--formats",
        default="png,svg",
        metavar="LIST",
        help=f"figure formats besides the PNG the report shows, from {','.join(FIGURE_FORMATS)} (default: png,svg)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from analysis.remote import default_report_dir
    from analysis.report import write_report  # pandas, matplotlib, scipy: only when a report is made

    formats = tuple(f.strip().lower() for f in args.formats.split(",") if f.strip())
    out = Path(args.out) if args.out else default_report_dir(args.run_dirs[0])
    path = write_report(args.run_dirs, out, args.metric, datasets=args.dataset, formats=formats)
    print(f"report written: {path} (and {path.with_suffix('.html').name}, figures/, tables/)")
    return 0
