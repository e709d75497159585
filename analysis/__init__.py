"""analysis: how finished trials become plots, tables and reports. Imports neither torch nor Ray.

    load(run_dirs)        -> DataFrame, one row per trial      (analysis.results)
    load_epochs(run_dirs) -> DataFrame, one row per trial×epoch
    figures.*(df)         -> matplotlib Figure                 (analysis.figures)
    tables.*(df)          -> DataFrame; to_markdown / to_latex  (analysis.tables)
    write_report(run_dirs, out) -> report.md, report.html, figures/, tables/   (analysis.report)

This module stays light (no pandas, no matplotlib) so `starch --help` does not pay for them.
"""

ACCURACY_METRICS = ("clip@1", "video@1", "video@5")  # what the trials report (trainers/loop.py)
FIGURE_FORMATS = ("png", "svg", "pdf")


def load(run_dirs, **kwargs):
    """See analysis.results.load."""
    from analysis.results import load as _load

    return _load(run_dirs, **kwargs)


def load_epochs(run_dirs, **kwargs):
    """See analysis.results.load_epochs."""
    from analysis.results import load_epochs as _load_epochs

    return _load_epochs(run_dirs, **kwargs)


def write_report(run_dirs, out, metric="video@1", **kwargs):
    """See analysis.report.write_report."""
    from analysis.report import write_report as _write_report

    return _write_report(run_dirs, out, metric, **kwargs)
