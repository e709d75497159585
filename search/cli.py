"""The `starch` command line.

Every sub-command lives in the package that owns its logic and contributes an
`add_parser(subparsers)` function; this module only wires them together and turns
exceptions into one clear line (a traceback only with --debug).
"""

from __future__ import annotations

import argparse
import os
import sys

from analysis import report_cli
from search import demo, promote_cli, search_cli
from spaces import describe_cli
from trainers import export_cli, train_cli
from trainers.data import data_cli


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="starch",
        description="starch: spatiotemporal architecture search for video ConvNets.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `starch COMMAND --help` for the options and examples of each command.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    describe_cli.add_parser(sub)
    train_cli.add_parser(sub)
    demo.add_parser(sub)
    search_cli.add_parsers(sub)
    promote_cli.add_parser(sub)
    report_cli.add_parser(sub)
    data_cli.add_parser(sub)
    export_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("starch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `starch … | head`: the reader left, which is not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except (ValueError, FileNotFoundError, UserError) as exc:  # bad input: the message says what to fix
        if args.debug:
            raise
        print(f"starch: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else: still one line, the traceback on request
        if args.debug:
            raise
        from analysis.runfolder import path_error

        found = path_error(exc)  # a full disk, a read-only folder, a file in the way: the path and what to do
        if found is not None and found[0]:
            print(f"starch: error: {found[0]}: {found[1]}; {found[2]}", file=sys.stderr)
            return 1
        first = one_line(exc)
        print(
            f"starch: error: {type(exc).__name__}: {first} (run `starch --debug …` for the traceback)", file=sys.stderr
        )
        return 1


def one_line(exc: BaseException) -> str:
    """The line of an error worth printing: its first, or — when the message is itself a traceback,
    as Ray Tune's TuneError wraps a failure in a callback or searcher — the exception it ends with."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]


if __name__ == "__main__":
    sys.exit(main())
