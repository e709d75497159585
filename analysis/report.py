"""A report folder from one or more run folders: report.md, a self-contained report.html, figures, tables.

    write_report(["runs/ucf", "runs/hmdb"], "report/", metric="video@1") -> Path("report/report.md")

    report/
        report.md            figures linked, tables inline
        report.html          the same document, figures embedded as base64 PNG (one file to mail)
        figures/*.png|svg    accuracy_vs_flops, accuracy_vs_<axis> (one-axis sweeps), training_curves,
                             proxy_vs_promoted_<run> (a `starch promote` run against its proxy)
        tables/*.md|csv|tex  ranking, sweep_<dataset>, consistency, fidelity, promotion_<run>; trials.csv, epochs.csv

Every number comes from the run folders (the trials' records, params.json, the starch_*.json files);
the text only names where each one came from and what was inferred or skipped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import markdown
import matplotlib.pyplot as plt
import pandas as pd
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

from analysis import ACCURACY_METRICS, FIGURE_FORMATS, figures, tables
from analysis.describe import describe_command
from analysis.results import STATUSES, Run, combine, read_runs
from analysis.runfolder import ESTIMATE_FILE


class Document:
    """A report built once as Markdown blocks; the HTML is that Markdown rendered by Python-Markdown
    (tables, fenced code), with the figures embedded so the file stands alone."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.md: list[str] = [f"# {title}\n"]
        self.images: dict[str, bytes] = {}  # relative path in report.md → the PNG the HTML embeds

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")

    def para(self, text: str) -> None:
        self.md.append(text + "\n")

    def bullets(self, items: Iterable[str]) -> None:
        items = list(items)
        if items:
            self.md.append("".join(f"- {i}\n" for i in items))

    def code(self, text: str) -> None:
        self.md.append(f"```\n{text}\n```\n")

    def table(self, table: pd.DataFrame) -> None:
        self.md.append(tables.to_markdown(table))

    def image(self, relative: str, png: bytes, alt: str) -> None:
        self.md.append(f"![{alt}]({relative})\n")
        self.images[relative] = png

    def markdown(self) -> str:
        return "\n".join(self.md)

    def to_html(self) -> str:
        body = markdown.markdown(self.markdown(), extensions=["tables", "fenced_code", _Standalone(self.images)])
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
            "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;"
            "padding:3px 8px;text-align:left}th{background:#f3f3f3}img{max-width:100%}"
            "pre{background:#f6f6f6;padding:8px;overflow-x:auto}code{background:#f6f6f6}"
        )
        return (
            f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
        )


class _Standalone(Extension):
    """Python-Markdown, for a report: `<…>` in the text (an error message, `<--data>`) is text, not
    HTML passed through; an image whose PNG the Document holds is embedded as a data: URI."""

    def __init__(self, images: dict[str, bytes]) -> None:
        super().__init__()
        self.images = images

    def extendMarkdown(self, md) -> None:  # noqa: N802 - Python-Markdown's name
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        md.treeprocessors.register(_EmbedImages(md, self.images), "embed_images", 0)


class _EmbedImages(Treeprocessor):
    def __init__(self, md, images: dict[str, bytes]) -> None:
        super().__init__(md)
        self.images = images

    def run(self, root) -> None:
        for img in root.iter("img"):
            png = self.images.get(img.get("src"))
            if png is not None:
                img.set("src", "data:image/png;base64," + base64.b64encode(png).decode("ascii"))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_").lower() or "dataset"


# ------------------------------------------------------------------------------------------ sections


def resolve_metric(runs: Sequence[Run], metric: str | None) -> str:
    """The metric asked for, else the one the experiment optimised (starch_experiment.json), else video@1."""
    if metric is None:
        for run in runs:
            candidate = (run.experiment or {}).get("search", {}).get("metric")
            if candidate in ACCURACY_METRICS:
                return candidate
        metric = "video@1"
    return tables.check_metric(metric)


def _counts(run: Run) -> dict[str, Any]:
    t = run.trials
    status = t["status"].value_counts() if len(t) else pd.Series(dtype=int)
    wall = t["wall_time_s"].sum() / 3600 if "wall_time_s" in t else 0.0
    gpu = t["gpu_hours"].sum(min_count=1) if "gpu_hours" in t else float("nan")
    row = {"run": run.name, "dataset": run.dataset, "trials": int(len(t))}
    row.update({s: int(status.get(s, 0)) for s in STATUSES})
    row.update(
        {
            "bad videos": int(t["bad_videos"].max()) if len(t) else 0,
            "short videos dropped": int(t["short_videos_dropped"].max()) if len(t) else 0,
            "missing videos": int(t["missing_videos"].max()) if len(t) and "missing_videos" in t else 0,
            "preemptions": int(t["preemptions"].sum()) if "preemptions" in t else 0,
            "errors": int(t["errors"].sum()) if "errors" in t else 0,
            "wall time (h)": f"{wall:.3f}",
            "GPU-hours": "—" if pd.isna(gpu) else f"{gpu:.3f}",
        }
    )
    return row


def unusable_videos(trials: pd.DataFrame) -> pd.DataFrame:
    """file | what was wrong | trials that met it, from the trials' `data_problems`."""
    met: dict[tuple[str, str], int] = {}
    for problems in trials.get("data_problems", pd.Series(dtype=object)).dropna():
        for path, problem in problems.items():
            met[(path, problem)] = met.get((path, problem), 0) + 1
    rows = [{"file": path, "what was wrong": problem, "trials": n} for (path, problem), n in sorted(met.items())]
    return pd.DataFrame(rows, columns=["file", "what was wrong", "trials"])


def _accounting(doc: Document, runs: Sequence[Run], trials: pd.DataFrame) -> None:
    doc.heading("Trials")
    counts = pd.DataFrame([_counts(r) for r in runs])
    empty = [s for s in STATUSES if s in counts and counts[s].sum() == 0]
    if (counts["GPU-hours"] == "—").all():  # a CPU run: the column would say nothing
        empty.append("GPU-hours")
    doc.table(counts.drop(columns=empty))
    doc.para(
        "Bad, short (dropped) and missing videos are the largest counts any one trial reported (every "
        "trial reads the same files; missing: listed but not on disk, skipped with `missing_videos: skip`). "
        "Preemptions: restarts after a trial lost its node (not counted against `failures.max_failures`); "
        "errors: failures of the trials' own code, counted against `failures.max_failures` (an errored "
        "trial's last one included). "
        "Wall time sums the trials' `time_total_s`; GPU-hours multiply it by the "
        "GPUs per trial in starch_experiment.json (— when the run does not record them)."
    )
    problems = unusable_videos(trials)
    if len(problems):
        doc.heading("Unusable videos", 3)
        doc.para(
            f"{len(problems)} video file(s) could not be used by at least one trial (names as the trials "
            "reported them; a record lists at most 200)."
        )
        doc.table(problems)
    failed = trials[trials["status"].isin(["errored", "diverged", "oom", "oom-shared", "infeasible"])]
    if len(failed):
        doc.heading("Errored, diverged and infeasible trials", 3)
        doc.table(
            pd.DataFrame(
                {
                    "run": failed["run"],
                    "trial": failed["trial_id"],
                    "architecture": failed["label"],
                    "status": failed["status"],
                    "reason": failed["reason"].fillna("—"),
                }
            )
        )


DEMO_FILE = "starch_demo.json"  # `starch demo`'s plan: what it measured, the epochs it chose, its trials


def never_ran(planned: Iterable[dict[str, Any]], trials: pd.DataFrame, metric: str) -> list[str]:
    """The planned trials ("MC3 seed 2") that never reported `metric`: a budget that stops a search
    must not hide them. `planned`: {"name", "seed"} per trial; `trials`: one run's."""
    column = f"final_{metric}"
    done = {
        (f, s) for f, s, v in zip(trials.get("family", []), trials.get("seed", []), trials.get(column, [])) if v == v
    }  # NaN: no evaluation
    return [f"{p['name']} seed {p['seed']}" for p in planned if (p["name"], p["seed"]) not in done]


def _demo_plan(doc: Document, runs: Sequence[Run], metric: str) -> None:
    """What `starch demo` measured and chose before its search, and the planned trials that never ran."""
    for run in runs:
        try:
            plan = json.loads((run.path / DEMO_FILE).read_text())
        except (OSError, ValueError):
            continue
        doc.heading(f"Plan of {run.name}" if len(runs) > 1 else "Plan")
        scaling = plan.get("scaling") or {}
        if scaling.get("sentence"):
            took = plan.get("search_s")
            doc.para(
                f"Fitted to this machine before the search ({DEMO_FILE}): {scaling['sentence']}."
                + (f" The search took {took / 60:.1f} min." if took is not None else "")
            )
        planned = plan.get("planned") or []
        missing = never_ran(planned, run.trials, metric)
        if missing:
            doc.para(
                f"**{len(missing)} of {len(planned)} planned trials never reported {metric}** (the time "
                "budget stopped the search, or they failed); the ranking leaves them out:"
            )
            doc.bullets(missing)
        elif planned:
            doc.para(f"All {len(planned)} planned trials reported {metric}.")


def _cost(doc: Document, runs: Sequence[Run], trials: pd.DataFrame) -> None:
    """The cost estimate printed before the first trial (starch_estimate.json) beside what the trials took."""
    for run in runs:
        try:
            est = json.loads((run.path / ESTIMATE_FILE).read_text())
        except (OSError, ValueError):
            continue
        mine = trials[trials["run"] == run.name]
        done = mine[mine["status"] == "completed"]
        rows = []
        for n in est.get("networks", []):
            took = done.loc[done["arch_key"] == n["key"], "wall_time_s"].dropna()
            predicted = n.get("trial_s")
            actual = took.median() if len(took) else float("nan")
            rows.append(
                {
                    "network": n["label"],
                    "GFLOPs/clip": f"{n['gflops']:.3g}",
                    "trials": f"{len(took)} of {n['trials']} completed",
                    "predicted s/trial": "—" if predicted is None else f"{predicted:.0f}",
                    "actual s/trial (median)": "—" if pd.isna(actual) else f"{actual:.0f}",
                    "actual / predicted": "—" if predicted is None or pd.isna(actual) else f"{actual / predicted:.2f}",
                }
            )
        doc.heading(f"Cost: predicted and actual ({run.name})" if len(runs) > 1 else "Cost: predicted and actual", 3)
        wall, hours = est.get("wall_s"), est.get("device_hours")
        span = mine["finished_at"].max() - est["written"] if "finished_at" in mine and est.get("written") else None
        device_s = (mine["wall_time_s"].sum() * float(est.get("devices_per_trial") or 0)) if len(mine) else None
        said = [f"throughput: {est.get('source', '?')}"]
        if wall is not None and hours is not None:
            said.append(
                f"predicted {wall / 60:.1f} min wall (writing the report included) at {est.get('concurrency')} trial(s) at a time and "
                f"{hours:.3g} {est.get('device', 'GPU')}-hours"
            )
        if span is not None and pd.notna(span) and device_s is not None:
            said.append(
                f"actual: the last trial reported {span / 60:.1f} min after the estimate, "
                f"{device_s / 3600:.3g} {est.get('device', 'GPU')}-hours (Σ trial time × {est.get('device', 'GPU')}s per trial)"
            )
        doc.para(f"Estimated before the first trial ({ESTIMATE_FILE}); " + "; ".join(said) + ".")
        doc.table(pd.DataFrame(rows))


def memory_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Predicted and measured peak memory, one row per run × architecture whose trials (seeds) give
    the same numbers (at the shown precision), naming the trials; the measured column only when some
    trial measured it (CUDA: allocated and reserved). Empty when no trial predicted its memory."""
    if "predicted_memory_gb" not in trials or not trials["predicted_memory_gb"].notna().any():
        return pd.DataFrame()
    t = trials[trials["predicted_memory_gb"].notna()]
    nan = pd.Series(float("nan"), index=t.index)
    measured = t["measured_memory_gb"] if "measured_memory_gb" in t else nan
    reserved = t["measured_reserved_gb"] if "measured_reserved_gb" in t else nan
    rows = pd.DataFrame(
        {
            "run": t["run"],
            "architecture": t["label"],
            "trial": t["trial_id"],
            "predicted peak (GiB)": t["predicted_memory_gb"].map(lambda v: f"{v:.3f}"),
            "measured peak (GiB)": measured.map(lambda v: "—" if pd.isna(v) else f"{v:.3f}"),
            "reserved peak (GiB)": reserved.map(lambda v: "—" if pd.isna(v) else f"{v:.3f}"),
        }
    )
    keys = ["run", "architecture", "predicted peak (GiB)", "measured peak (GiB)", "reserved peak (GiB)"]
    table = rows.groupby(keys, sort=False, dropna=False)["trial"].agg(", ".join).reset_index()
    table = table.rename(columns={"trial": "trials"})[["run", "architecture", "trials", *keys[2:]]]
    for column in keys[3:]:  # measured by CUDA only: no column that is empty for the whole run
        if (table[column] == "—").all():
            table = table.drop(columns=[column])
    return table


def _missing_warning(doc: Document, runs: Sequence[Run], metric: str) -> None:
    """One line at the top when `starch demo` planned trials that never reported (details: Plan)."""
    missing = []
    for run in runs:
        try:
            planned = json.loads((run.path / DEMO_FILE).read_text()).get("planned") or []
        except (OSError, ValueError, AttributeError):
            continue
        missing += never_ran(planned, run.trials, metric)
    if missing:
        doc.para(
            f"**{len(missing)} planned trial(s) never reported {metric} and are not ranked** "
            f"({', '.join(missing)}): see Plan."
        )


def _memory(doc: Document, trials: pd.DataFrame) -> None:
    """Predicted peak memory of a training step beside torch's measured peak (CUDA trials only)."""
    table = memory_table(trials)
    if table.empty:
        return
    doc.heading("Memory", 3)
    doc.table(table)
    measured = "measured peak (GiB)" in table
    doc.para(
        "Predicted: spaces.memory for the trial's batch and precision (what `gpus_per_trial: auto` packs "
        "by). "
        + (
            "Measured: the largest epoch's peak of torch.cuda.max_memory_allocated (the peaks are reset "
            "after the trial's matmul probe and after each epoch), and of max_memory_reserved, what the caching "
            "allocator held (— for trials on the CPU)."
            if measured
            else "Measured: not shown, no trial ran on a GPU (torch.cuda.max_memory_allocated measures CUDA only)."
        )
        + " Trials whose numbers agree share a row."
    )


def _efficiency(doc: Document, trials: pd.DataFrame) -> None:
    """How close each architecture's training ran to the machine's limit (trials that recorded it)."""
    table = tables.efficiency(trials)
    if table.empty:
        return
    doc.heading("Efficiency", 3)
    doc.table(
        pd.DataFrame(
            {
                "dataset": table["dataset"],
                "architecture": table["architecture"],
                "trials": table["trials"],
                "GFLOPs/clip": table["gflops"].map(lambda v: f"{v:.3g}"),
                "achieved GFLOP/s": table["achieved_gflops_per_s"].map(lambda v: f"{v:.3g}"),
                "peak GFLOP/s": table["peak_gflops_per_s"].map(lambda v: f"{v:.3g}"),
                "efficiency": table["efficiency"].map(lambda v: f"{v:.1%}"),
                **{
                    c.removeprefix("phase_").removesuffix("_share"): table[c].map(_percent)
                    for c in table.columns
                    if c.startswith("phase_")
                },
            }
        )
    )
    doc.para(
        "Achieved: 3 × 2 × MACs per clip (forward + backward, 2 FLOPs per multiply-accumulate) × training "
        "clips/s, data loading included. Peak: the FLOP/s of a dense matmul each trial measured on its own "
        "device and threads (fp32 on a CPU, the autocast dtype on a GPU). Medians over each architecture's trials."
    )
    if any(c.startswith("phase_") for c in table.columns):
        doc.para(
            "Where the time went, as a share of each trial's wall time (its epochs, from its start to its last "
            "record): setup (model, loaders, peak probe), data (waiting for the next batch), h2d (the batch onto "
            "the device), forward, backward, optimizer (the network's step), eval (clip@1 and video@1), report "
            "(reporting and checkpointing each epoch, Ray's report included), other (the loop's bookkeeping). "
            "On a GPU, data is the time the GPU waited for a batch. Medians over each architecture's trials."
        )


def _percent(value: float) -> str:
    if pd.isna(value):
        return "—"
    return "<1%" if 0 < value < 0.005 else f"{value:.0%}"


def _configuration(doc: Document, runs: Sequence[Run]) -> None:
    doc.heading("Search configuration")
    for run in runs:
        if run.experiment is not None:
            doc.para(f"**{run.name}** ({run.dataset}), from `starch_experiment.json`:")
            doc.code(json.dumps(run.experiment, indent=2, sort_keys=True, default=str))
            continue
        shared = _shared_params(run)
        doc.para(
            f"**{run.name}** ({run.dataset}): no `starch_experiment.json`; the settings every trial's "
            "`params.json` shares (the architecture varies):"
        )
        doc.code(json.dumps(shared, indent=2, sort_keys=True, default=str) if shared else "(no params.json)")


def _shared_params(run: Run) -> dict[str, Any]:
    params = []
    for folder in sorted(run.path.iterdir()):
        try:
            params.append(json.loads((folder / "params.json").read_text()))
        except (OSError, ValueError):
            continue
    if not params:
        return {}
    shared = {}
    for key, value in params[0].items():
        if key != "arch" and all(p.get(key) == value for p in params[1:]):
            shared[key] = value
    return shared


def _best(doc: Document, trials: pd.DataFrame, rank: pd.DataFrame, metric: str) -> None:
    doc.heading("Best architecture")
    top = rank[rank["rank"] == 1]
    if top.empty:
        doc.para(f"No trial has reported {metric} yet.")
        return
    s = tables.summarize(trials, metric)
    verdicts: dict[str, bool] = {}
    for _, row in top.iterrows():
        if row["dataset"] not in verdicts:  # one verdict per dataset, however many tie at rank 1
            mine = trials[trials["dataset"] == row["dataset"]]
            classes, videos = (
                mine[c].dropna() if c in mine else pd.Series(dtype=float) for c in ("num_classes", "test_videos")
            )
            verdicts[row["dataset"]], sentence = tables.verdict(
                rank[rank["dataset"] == row["dataset"]],
                metric,
                classes.iloc[0] if len(classes) else None,
                videos.min() if len(videos) else None,
            )
            doc.para(f"**{row['dataset']}**: {sentence}")
        crowned = verdicts[row["dataset"]]
        match = s[(s["dataset"] == row["dataset"]) & (s["label"] == row["architecture"])]
        key = match["arch_key"].iloc[0]
        members = trials[
            (trials["dataset"] == row["dataset"]) & (trials["arch_key"] == key) & trials[f"final_{metric}"].notna()
        ]  # trained: their classes come from the dataset
        arch = json.loads(key)
        arch["num_classes"] = int(members["num_classes"].iloc[0])
        std = row["std (%)"]
        value = f"{row[f'{metric} (%)']:.1f}" + (f" ± {std:.1f}" if pd.notna(std) else "")
        doc.para(
            f"{'Best' if crowned else 'Ranked first (not a winner, see above)'}: "
            f"{row['architecture']} — {metric} {value} % over {row['n']} trial(s) "
            f"({', '.join(members['trial_id'])}); k = {row['k']}, {row['params (M)']:.3g} M params, "
            f"{row['GFLOPs']:.3g} GFLOPs per clip."
        )
        command = describe_command(arch)
        doc.code(
            command
            if command
            else "no `starch describe` line reproduces this network; its ArchSpec:\n" + json.dumps(arch, sort_keys=True)
        )


def _save(fig, out: Path, name: str, formats: Sequence[str]) -> bytes:
    """Write the figure in every format (PNG always: the report shows it); return the PNG bytes."""
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for fmt in set(formats) - {"png"}:
        fig.savefig(out / "figures" / f"{name}.{fmt}", bbox_inches="tight")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    png = _small_png(buffer.getvalue())
    (out / "figures" / f"{name}.png").write_bytes(png)
    return png


def _small_png(png: bytes) -> bytes:
    """The same picture with a 256-colour palette (a plot has few colours): about 3× smaller, which
    matters once the HTML embeds it. Falls back to the original if Pillow cannot do it."""
    try:
        from PIL import Image

        image = Image.open(io.BytesIO(png)).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        buffer = io.BytesIO()
        image.save(buffer, format="png", optimize=True)
    except Exception:  # noqa: BLE001 - any Pillow problem: keep the full-colour file
        return png
    return buffer.getvalue() if buffer.tell() < len(png) else png


def _figure(doc: Document, out: Path, name: str, formats, caption: str, make) -> None:
    try:
        fig = make()
    except ValueError as exc:
        doc.para(f"({name}: not drawn — {exc})")
        return
    png = _save(fig, out, name, formats)
    doc.image(f"figures/{name}.png", png, caption)
    doc.para(f"*{caption}*")


def _write_table(out: Path, name: str, table: pd.DataFrame, display: pd.DataFrame, caption: str) -> None:
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / f"{name}.csv", index=False)
    (folder / f"{name}.md").write_text(tables.to_markdown(display))
    (folder / f"{name}.tex").write_text(tables.to_latex(display, caption))


def _expansions(doc: Document, out: Path, runs: Sequence[Run], formats) -> None:
    """The path of each `search.algorithm: expand` run (X3D-style progressive expansion)."""
    from analysis import expansion

    for run in runs:
        path = expansion.read_path(run.path)
        if path is None:
            continue
        name = f"expansion_{_slug(run.name)}"
        doc.heading(f"Progressive expansion: {run.name}")
        doc.para(
            f"From the cheapest network of the space, each step grew one axis per candidate by ≈ ×{path['factor']:g} "
            f"GFLOPs and kept the best Δ{path['metric']}/ΔGFLOPs; ended: {path['finished'] or 'not yet'}."
        )
        _figure(
            doc,
            out,
            name,
            formats,
            "Candidates of every step by expanded axis; black: the kept path.",
            lambda path=path: expansion.expansion_figure(path),
        )
        steps = expansion.step_table(path)
        shown = expansion.display_steps(steps)
        doc.table(shown)
        _write_table(out, name, steps, shown, f"Expansion steps of {run.name}")


def _proxy_trials(record: dict[str, Any], runs: Sequence[Run], trials: pd.DataFrame) -> tuple[pd.DataFrame | None, str]:
    """(the proxy run's trials, its name) — from the runs being reported, else read from where the
    promoted run says it is; (None, why) when it cannot be read."""
    where = str(record["run"])
    for run in runs:
        if str(run.path.expanduser().resolve()) == where.rstrip("/") or str(run.path) == where:
            return trials[trials["run"] == run.name], run.name
    try:
        proxy = read_runs([where])
    except (OSError, ValueError) as exc:
        return None, str(exc)
    return combine(proxy)[0], proxy[0].name


def _promotions(doc: Document, out: Path, runs: Sequence[Run], trials: pd.DataFrame, metric: str, formats) -> None:
    """For each run `starch promote` made: its proxy's ranking beside its own (analysis.promotion)."""
    from analysis import promotion

    for run in runs:
        record = promotion.promoted_from(run.experiment)
        if record is None:
            continue
        proxy, name = _proxy_trials(record, runs, trials)
        doc.heading(
            f"Promotion: did the proxy's ranking hold? ({run.name})"
            if len(runs) > 1
            else "Promotion: did the proxy's ranking hold?"
        )
        if proxy is None:
            doc.para(
                f"{run.name} was promoted from `{record['run']}`, which cannot be read from here ({name}); "
                f"report both: `starch report PROXY {run.path}`."
            )
            continue
        table = promotion.comparison(proxy, trials[trials["run"] == run.name], metric)
        doc.para(
            f"`starch promote` chose {len(table)} network(s) of **{name}** ({record['selection']}, by "
            f"{record['metric']}) and **{run.name}** trained them again. Means ± std over seeds, completed "
            f"trials only; ranks within these networks; Kendall τ and Spearman ρ compare the two means "
            "(— below 3 networks, or when one side is constant)."
        )
        doc.table(tables.display_stats(pd.DataFrame([promotion.agreement(table)])))
        shown = promotion.display(table, metric)
        doc.table(shown)
        slug = _slug(run.name)
        _write_table(out, f"promotion_{slug}", table.drop(columns="arch_key"), shown, f"{name} vs {run.name}")
        for verdict in ("stayed on the front", "fell off the front"):
            names = list(table.loc[table["promoted front"] == verdict, "architecture"])
            if names:
                doc.para(f"Of the proxy's picks, {len(names)} {verdict} of {metric} vs GFLOPs: {', '.join(names)}.")
        _figure(
            doc,
            out,
            f"proxy_vs_promoted_{slug}",
            formats,
            f"{metric} of each network in {name} (x) and {run.name} (y), mean ± std over seeds; dotted: y = x.",
            lambda table=table, name=name, run=run: figures.proxy_vs_promoted(
                table, metric, proxy=name, promoted=run.name
            ),
        )


# ------------------------------------------------------------------------------------------ the report


def write_report(
    run_dirs: str | Path | Iterable[str | Path],
    out: str | Path,
    metric: str | None = "video@1",
    *,
    datasets: Iterable[str] | None = None,
    formats: Sequence[str] = ("png", "svg"),
) -> Path:
    """Read the run folders and write the report folder `out`; return the path of report.md.

    metric: clip@1, video@1 or video@5 (None: the experiment's metric, else video@1).
    datasets: one label per run folder, overriding the labels read from the runs.
    Raises FileNotFoundError/ValueError naming the folder when a path is not a run, or when no run
    holds any trial yet; anything unreadable inside a run is skipped and listed in the report.
    """
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad:
        raise ValueError(f"figure format(s) {bad} not supported; valid: {', '.join(FIGURE_FORMATS)}")
    runs = read_runs(run_dirs, datasets=datasets)
    trials, epochs = combine(runs)
    if trials.empty:
        raise ValueError(f"nothing to report: {', '.join(str(r.path) for r in runs)} hold(s) no trial yet")
    metric = resolve_metric(runs, metric)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)

    doc = Document(f"starch report: {', '.join(r.name for r in runs)}")
    doc.para(
        f"Runs: {', '.join(f'`{r.path}` ({r.dataset})' for r in runs)}. Ranking metric: **{metric}** at each "
        "trial's last evaluated epoch; repeats of one network (seeds) as mean ± std."
    )
    if epochs.empty:  # every trial failed before its first epoch: say so, keep what is known
        _demo_plan(doc, runs, metric)
        _accounting(doc, runs, trials)
        counts = ", ".join(f"{n} {s}" for s, n in trials["status"].value_counts().items())
        doc.heading("Ranking")
        doc.para(
            f"Nothing to rank or plot: no trial reported an epoch ({counts}). The tables above give each "
            "trial's status and reason; `starch status RUN_DIR` shows the same."
        )
        return _finish(doc, out, runs, trials, epochs)
    rank = tables.ranking(trials, metric)
    _missing_warning(doc, runs, metric)

    # what the reader came for first: the figure, the ranking and what it supports ...
    doc.heading("Accuracy vs computation")
    _figure(
        doc,
        out,
        "accuracy_vs_flops",
        formats,
        f"{metric} vs GFLOPs per clip (log scale), one panel per dataset; bars: ± one seed std, clipped to 0–100 %; "
        "dashed: Pareto front.",
        lambda: figures.accuracy_vs_flops(trials, metric),
    )
    for axis in figures.sweep_axes(trials):
        _figure(
            doc,
            out,
            f"accuracy_vs_{axis}",
            formats,
            f"{metric} vs {figures.SWEEP_AXES[axis]}.",
            lambda axis=axis: figures.accuracy_vs_axis(trials, axis, metric),
        )

    doc.heading("Ranking")
    display = tables.display_ranking(rank, metric)
    doc.table(display)
    _write_table(out, "ranking", rank, display, f"Ranking by {metric}")

    _best(doc, trials, rank, metric)

    doc.heading("Sweep tables")
    shown = 0
    for dataset in dict.fromkeys(trials["dataset"]):
        sweep = tables.sweep_table(trials, metric, dataset)
        if sweep.shape[1] <= 1:
            continue
        shown += 1
        doc.para(f"**{dataset}** (Res3D Tables 6–7 layout):")
        if sweep.shape[1] > 13:
            doc.para(f"{sweep.shape[1] - 1} networks: too wide to show here; see `tables/sweep_{_slug(dataset)}.csv`.")
        else:
            doc.table(sweep)
        _write_table(out, f"sweep_{_slug(dataset)}", sweep, sweep, f"{dataset}: {metric} by network")
    if not shown:
        doc.para(f"No network has reported {metric} yet.")

    if trials["dataset"].nunique() > 1:
        doc.heading("Cross-dataset consistency")
        agree = tables.consistency(trials, metric)
        doc.para(
            "Rank correlation of the networks both datasets trained (matched by ArchSpec, mean over "
            "repeats); — when fewer than 3 are shared or one side is constant."
        )
        doc.table(tables.display_stats(agree))
        _write_table(out, "consistency", agree, tables.display_stats(agree), "Cross-dataset ranking consistency")

    _expansions(doc, out, runs, formats)

    doc.heading("Training curves")
    chosen = figures.default_curve_trials(trials, metric)
    _figure(
        doc,
        out,
        "training_curves",
        formats,
        "Train (thin) and test (thick) error per epoch of the best trial of each family.",
        lambda: figures.training_curves(epochs, chosen, families=trials["family"].dropna()),
    )

    doc.heading("Fidelity of early stopping")
    fid = tables.fidelity(epochs, trials, metric) if len(epochs) else pd.DataFrame()
    if fid.empty:
        doc.para("No completed trial with evaluated epochs: nothing to correlate.")
    else:
        doc.para(
            f"Rank correlation between {metric} at epoch e and at the final epoch, over the trials that "
            "completed (how far an early stop would have kept the final ranking)."
        )
        doc.table(tables.display_stats(fid))
        _write_table(out, "fidelity", fid, tables.display_stats(fid), "Early-stopping fidelity")

    _promotions(doc, out, runs, trials, metric, formats)

    # ... then the diagnostics: how the run went
    _demo_plan(doc, runs, metric)
    _accounting(doc, runs, trials)
    _cost(doc, runs, trials)
    _memory(doc, trials)
    _efficiency(doc, trials)

    return _finish(doc, out, runs, trials, epochs)


def _finish(doc: Document, out: Path, runs: Sequence[Run], trials: pd.DataFrame, epochs: pd.DataFrame) -> Path:
    """The sections every report ends with, then the files."""
    _configuration(doc, runs)
    doc.heading("What was skipped or inferred")
    notes = [n for r in runs for n in r.notes] + [s for r in runs for s in r.skipped]
    unusable = len(unusable_videos(trials))
    if unusable:
        notes.append(f"{unusable} video file(s) could not be used by some trial: see Unusable videos")
    doc.bullets(notes or ["nothing: every run file and video was read, and every status was recorded by the search"])

    (out / "tables").mkdir(exist_ok=True)
    trials.drop(columns=["data_problems"], errors="ignore").to_csv(out / "tables" / "trials.csv", index=False)
    unusable_videos(trials).to_csv(out / "tables" / "unusable_videos.csv", index=False)
    epochs.drop(columns=["arch_key"], errors="ignore").to_csv(out / "tables" / "epochs.csv", index=False)
    (out / "report.html").write_text(doc.to_html())
    path = out / "report.md"
    path.write_text(doc.markdown())
    return path
