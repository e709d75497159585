"""Ray Tune run folders → tidy pandas DataFrames. No torch, no Ray: only the files are read.

    STORAGE/NAME/                       a run (one Ray Tune experiment)
        starch_experiment.json          the validated experiment config       (optional, search layer)
        starch_trials.json              [{trial_id, status, error, stopped_early,         (optional)
                                          failures, preemptions}]
        starch_infeasible.json          [{arch, reason}] rejected before training         (optional)
        experiment_state-<time>.json    Ray's own trial table (read as JSON for the status only)
        <trial folder>/params.json      the trial config: the search's {"candidate": {"arch", "seed",
                                        "axes", "repeat", "params", "gflops"}, "data", "recipe"}, or
                                        `starch train`'s {"arch", "data", "recipe", "budget", …};
                                        older runs: {"axes", "space", "repeat", …} (trainers.trial.resolve)
                       result.json      one JSON line per reported epoch (trainers/loop.py record)
                       error.txt        when the trial raised

    read_run(path)   -> Run(trials, epochs, skipped, notes, experiment, …)
    load(paths)      -> one row per trial (+ one per infeasible sample), several runs concatenated
    load_epochs(paths) -> one row per trial × reported epoch, for curves

Trial status (column `status`), from the most to the least authoritative source:
starch_trials.json, then Ray's latest experiment_state-*.json, then the files themselves
(error.txt = errored; a last record still "running" in a trial that is not running = stopped early).
Each run's `notes` say which source was used; `skipped` lists every file or line that was not read.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from analysis import ACCURACY_METRICS
from analysis.remote import fetch
from analysis.runfolder import EXPERIMENT_FILE, INFEASIBLE_FILE, TRIALS_FILE, is_uri
from spaces.arch import ArchSpec

ARCH_FIELDS = tuple(f.name for f in fields(ArchSpec))
STATUSES = (
    "completed",
    "stopped early",
    "running",
    "pending",
    "interrupted",
    "diverged",
    "oom",
    "oom-shared",
    "errored",
    "infeasible",
)
TRIAL_MARKERS = ("params.json", "result.json")
RUN_MARKERS = (EXPERIMENT_FILE, TRIALS_FILE, "tuner.pkl")
_TRIAL_ID = re.compile(r"(?:^|_)([0-9a-f]{5}_\d{5})(?:_|$)")  # trainable_<id>_… or starch's <id>_<label>


@dataclass
class Run:
    """One run folder, read. `trials` and `epochs` are DataFrames; the lists say what was not read."""

    path: Path
    name: str
    dataset: str
    experiment: dict[str, Any] | None
    trials: pd.DataFrame
    epochs: pd.DataFrame
    skipped: list[str] = field(default_factory=list)  # files/lines not read, and why
    notes: list[str] = field(default_factory=list)  # what was inferred rather than read
    data: dict[str, Any] | None = None  # a trial's data section (format, root, split, …)


# ------------------------------------------------------------------------------------------ reading files


def _read_json(path: Path, skipped: list[str]) -> Any:
    """A JSON file, or None (with a line in `skipped`) when it is unreadable."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        skipped.append(f"{path}: not readable as JSON ({type(exc).__name__}: {exc}); ignored")
        return None


def read_records(path: Path, skipped: list[str]) -> list[dict[str, Any]]:
    """The epoch records of one result.json; a broken line (e.g. truncated by a kill) is skipped."""
    records = []
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        skipped.append(f"{path}: cannot be read ({exc}); trial has no epochs")
        return records
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            skipped.append(f"{path} line {number}: not valid JSON (truncated write?); line skipped")
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            skipped.append(f"{path} line {number}: not a JSON object; line skipped")
    return records


def _is_run(path: Path) -> bool:
    return any((path / m).exists() for m in RUN_MARKERS) or any(path.glob("experiment_state-*.json"))


def _trial_dirs(path: Path) -> list[Path]:
    return sorted(d for d in path.iterdir() if d.is_dir() and any((d / m).exists() for m in TRIAL_MARKERS))


def _check_run_dir(path: Path) -> list[Path]:
    """The trial folders of a run, or a clear error when `path` is not a run folder."""
    if not path.exists():
        raise FileNotFoundError(f"run folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file, not a run folder (expected STORAGE/NAME/ written by Ray Tune)")
    trials = _trial_dirs(path)
    if trials or _is_run(path):
        return trials
    runs = sorted(d.name for d in path.iterdir() if d.is_dir() and (_is_run(d) or _trial_dirs(d)))
    hint = f"; it holds run folders {runs[:5]}: pass those instead" if runs else ""
    raise ValueError(
        f"{str(path)!r} is not a Ray Tune run folder: no experiment_state-*.json, starch_experiment.json "
        f"or trial sub-folder with params.json / result.json{hint}"
    )


def _ray_statuses(path: Path, skipped: list[str]) -> tuple[dict[str, str], str | None]:
    """trial_id → Ray status from the newest experiment_state-*.json (plain JSON inside)."""
    states = sorted(path.glob("experiment_state-*.json"))
    if not states:
        return {}, None
    data = _read_json(states[-1], skipped)
    statuses = {}
    try:
        for entry in data["trial_data"]:
            trial = json.loads(entry[0]) if isinstance(entry[0], str) else entry[0]
            statuses[str(trial["trial_id"])] = str(trial["status"])
    except (TypeError, KeyError, IndexError, ValueError):
        skipped.append(f"{states[-1]}: unexpected layout (Ray version?); trial status inferred from files")
        return {}, None
    return statuses, states[-1].name


def _trial_id(folder: Path, records: list[dict[str, Any]]) -> str:
    for record in records:
        if record.get("trial_id"):
            return str(record["trial_id"])
    match = _TRIAL_ID.search(folder.name)
    return match.group(1) if match else folder.name


def _error_reason(folder: Path) -> str | None:
    """The last line of error.txt: the exception (`FileNotFoundError: dataset root … does not exist`)."""
    try:
        lines = [l.strip() for l in (folder / "error.txt").read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return None
    return lines[-1] if lines else "error.txt is empty"


# ------------------------------------------------------------------------------------------ one trial


def flatten_arch(arch: dict[str, Any] | None) -> dict[str, Any]:
    """ArchSpec dict → flat columns: every field, convs/blocks as text and one column per stage."""
    arch = dict(arch or {})
    row: dict[str, Any] = {name: arch.get(name) for name in ARCH_FIELDS}
    convs, blocks = arch.get("convs") or [], arch.get("blocks") or []
    row["convs"] = ",".join(map(str, convs)) if convs else None
    row["blocks"] = ",".join(map(str, blocks)) if blocks else None
    for i in range(5):
        row[f"conv{i + 1}"] = convs[i] if i < len(convs) else None
    for i in range(4):
        row[f"blocks{i + 2}"] = blocks[i] if i < len(blocks) else None
    row["depth"] = _depth(arch)
    return row


def _depth(arch: dict[str, Any]) -> int | None:
    """ArchSpec.depth (the layer count); None for a dict that is not a whole ArchSpec."""
    try:
        return ArchSpec.from_dict(arch).depth
    except (TypeError, ValueError):
        return None


def arch_key(arch: dict[str, Any] | None) -> str:
    """Identity of a network across datasets and seeds (num_classes follows the dataset)."""
    return json.dumps({k: v for k, v in (arch or {}).items() if k != "num_classes"}, sort_keys=True)


def requested_arch(params: dict[str, Any]) -> dict[str, Any]:
    """The ArchSpec dict a trial config asks for (trainers.trial.resolve's forms).

    Only needed for trials that never reported (their records carry the arch actually trained).
    The search writes it resolved (`candidate.arch`); run folders from before it did so hold a
    searcher's sample as {"axes", "space"}, still read here (docs/example_report, old runs).
    """
    if isinstance(params.get("arch"), dict):
        return params["arch"]
    candidate = params.get("candidate")
    if isinstance(candidate, dict) and isinstance(candidate.get("arch"), dict):
        return candidate["arch"]
    if isinstance(params.get("axes"), dict) and isinstance(params.get("space"), dict):
        from spaces.space import Space  # torch-free: axes → ArchSpec, width solved analytically

        try:
            return Space.from_dict(params["space"]).to_arch(params["axes"]).to_dict()
        except (TypeError, ValueError, KeyError):
            return {}
    return {}


def _repeat_and_seed(params: dict[str, Any], records: list[dict[str, Any]]) -> tuple[Any, Any]:
    """(repeat, seed): the seed the trial's records carry, else the one its candidate was given.

    Run folders written before the records and candidates carried the seed: recipe.seed + repeat,
    the rule trainers.trial.resolve applied then (and still applies to `starch train` configs)."""
    candidate = params.get("candidate") if isinstance(params.get("candidate"), dict) else {}
    repeat = params.get("repeat", candidate.get("repeat"))
    seed = _last(records, "seed")
    if seed is None:
        seed = candidate.get("seed", params.get("seed"))
    if seed is not None:
        return repeat, seed
    recipe_seed = (params.get("recipe") or {}).get("seed")
    if recipe_seed is None and repeat is None:
        return None, None
    return repeat, (recipe_seed or 0) + (repeat or 0)  # Recipe.seed defaults to 0


def _last(records: list[dict[str, Any]], key: str) -> Any:
    for record in reversed(records):
        if record.get(key) is not None:
            return record[key]
    return None


def _metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for metric in ACCURACY_METRICS:
        values = [r[metric] for r in records if isinstance(r.get(metric), (int, float))]
        row[f"final_{metric}"] = values[-1] if values else math.nan
        row[f"best_{metric}"] = max(values) if values else math.nan
    for key in ("train_loss", "train_acc", "test_loss"):
        value = _last(records, key)
        row[f"final_{key}"] = value if value is not None else math.nan
    videos = _last(records, "test_videos")  # how far one seed's accuracy can be trusted (binomial)
    row["test_videos"] = videos if isinstance(videos, (int, float)) else math.nan
    return row


def _status(records, ray_status: str | None, starch: dict[str, Any] | None, errored: bool) -> tuple[str, bool]:
    """(status, inferred) of one trial; see the module docstring for the order of sources.

    The last record's own status (completed, diverged, oom) wins over an error.txt left by an
    earlier attempt that Ray retried; only the scheduler's ERROR wins over it.
    """
    last = records[-1].get("status") if records else None
    scheduler = str((starch or {}).get("status") or ray_status or "").upper() or None
    if scheduler == "ERROR":
        return "errored", False
    if last in ("diverged", "oom", "oom-shared", "completed"):
        return last, False
    if scheduler is None and errored:
        return "errored", True
    if scheduler in ("RUNNING", "PAUSED"):
        return "running", False
    if scheduler == "INTERRUPTED":  # the driver was stopped (Ctrl-C); `starch resume` continues it
        return "interrupted", False
    if scheduler == "PENDING" or not records:
        return "pending", scheduler is None
    # ended (TERMINATED / STOPPED) while the loop still said "running": a scheduler stopped it
    return "stopped early", scheduler is None and not (starch or {}).get("stopped_early")


def _dedupe_epochs(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Keep the last record of each epoch (a trial restored from an older checkpoint re-reports)."""
    by_epoch: dict[Any, dict[str, Any]] = {}
    for index, record in enumerate(records):
        by_epoch[record.get("epoch", f"#{index}")] = record
    kept = list(by_epoch.values())
    return kept, len(records) - len(kept)


def read_trial(
    folder: Path,
    *,
    ray_statuses: dict[str, str],
    starch_trials: dict[str, dict[str, Any]],
    gpus: float | None,
    skipped: list[str],
) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    """(trial row, epoch records, status was inferred) of one trial folder."""
    params = _read_json(folder / "params.json", skipped) or {}
    torn = False
    if (folder / "result.json").exists():
        before = len(skipped)
        records = read_records(folder / "result.json", skipped)
        torn = len(skipped) > before
    else:
        records = []
        skipped.append(f"{folder}: no result.json (trial never reported); shown without metrics")
    records, repeated = _dedupe_epochs(records)
    if repeated:
        skipped.append(f"{folder}: {repeated} epoch record(s) reported twice (resumed trial); kept the last of each")
    tid = _trial_id(folder, records)
    errored = (folder / "error.txt").exists()
    starch = starch_trials.get(tid)
    status, inferred = _status(records, ray_statuses.get(tid), starch, errored)
    # The record's arch is the one trained (width solved, classes from the dataset); params.json's
    # is what was asked for, the only one an errored trial has.
    arch = _last(records, "arch") or requested_arch(params)
    recipe = params.get("recipe") or {}
    last = records[-1] if records else {}
    reason = None
    if status == "errored":
        reason = (starch or {}).get("error") or _error_reason(folder) or "error (no message recorded)"
    elif status in ("diverged", "oom", "oom-shared"):
        reason = last.get("reason")
    elif torn and status == "stopped early":  # the epoch that says "completed" may be the torn one
        reason = "result.json has a torn line (a full disk or a killed driver?): its last epoch is unknown"
    wall = last.get("time_total_s")
    held = gpus if gpus is not None else _number(_last(records, "gpus"))  # gpus_per_trial: auto records its own
    repeat, seed = _repeat_and_seed(params, records)
    candidate = params.get("candidate") if isinstance(params.get("candidate"), dict) else {}
    row = {
        "trial_id": tid,
        "trial_dir": folder.name,
        "family": last.get("arch_name") or arch.get("name"),
        **flatten_arch(arch),
        # the trained network's costs; a trial that never reported has its candidate's (search.constraints)
        "params": last.get("params", candidate.get("params", math.nan)),
        "gflops": last.get("gflops", candidate.get("gflops", math.nan)),
        **_metrics(records),
        "epochs": max((r.get("epoch", 0) for r in records), default=0),
        "epochs_planned": recipe.get("epochs", math.nan),
        "status": status,
        "reason": reason,
        "bad_videos": max((r.get("bad_videos", 0) or 0 for r in records), default=0),
        "short_videos_dropped": max((r.get("short_videos_dropped", 0) or 0 for r in records), default=0),
        "missing_videos": max((r.get("missing_videos", 0) or 0 for r in records), default=0),
        "data_problems": {path: problem for r in records for path, problem in (r.get("data_problems") or [])},
        "resumed": any((r.get("resumed_from_epoch") or 0) > 0 for r in records),
        # restarts after a lost node (not counted against max_failures); failures of its own code (counted)
        "preemptions": int((starch or {}).get("preemptions") or 0),
        "errors": int((starch or {}).get("failures") or 0),
        "wall_time_s": wall if wall is not None else math.nan,
        "finished_at": last.get("timestamp", math.nan),  # Unix time of the last record (Ray's timestamp)
        "gpu_hours": wall * held / 3600 if (wall is not None and held is not None) else math.nan,
        # spaces.memory's prediction for the trial's batch and precision, and torch's peak on CUDA (search.gpu_packing)
        "predicted_memory_gb": _last(records, "predicted_memory_gb") or math.nan,
        "measured_memory_gb": max(
            (r["measured_memory_gb"] for r in records if r.get("measured_memory_gb")), default=math.nan
        ),
        "measured_reserved_gb": max(
            (r["measured_reserved_gb"] for r in records if r.get("measured_reserved_gb")), default=math.nan
        ),
        # the training pass's achieved FLOP/s (6 × MACs × clips/s) and ÷ the trial's measured matmul peak, median over epochs
        **_efficiency(records),
        # where the trial's time went: each phase's share of its epochs' wall time (trainers.phases)
        **phase_shares(records),
        "seed": seed,
        "repeat": repeat,
        "budget": params.get("budget"),
        "recipe_key": json.dumps({k: v for k, v in recipe.items() if k != "seed"}, sort_keys=True),
        "arch_key": arch_key(arch),
        "eval_protocol": _last(records, "eval_protocol"),
    }
    return row, records, inferred


def _efficiency(records: list[dict[str, Any]]) -> dict[str, float]:
    def median(key: str) -> float:
        values = sorted(r[key] for r in records if isinstance(r.get(key), (int, float)))
        return statistics.median(values) if values else math.nan

    return {key: median(key) for key in ("achieved_gflops_per_s", "peak_gflops_per_s", "efficiency")}


PHASE_FIELD = re.compile(r"^phase_(\w+)_s$")  # the trainer's per-epoch phase seconds (trainers.phases)


def phase_shares(records: list[dict[str, Any]]) -> dict[str, float]:
    """`phase_<name>_share`: the seconds of each phase summed over the trial's epochs ÷ their summed
    `epoch_wall_s`, in the order the records name the phases, and `phase_other_share` for the rest
    (loop bookkeeping); {} for trials recorded before phases were."""
    seconds: dict[str, float] = {}
    wall = 0.0
    for r in records:
        if not isinstance(r.get("epoch_wall_s"), (int, float)):
            continue
        wall += r["epoch_wall_s"]
        for key, value in r.items():
            match = PHASE_FIELD.match(key)
            if match and isinstance(value, (int, float)):
                seconds[match.group(1)] = seconds.get(match.group(1), 0.0) + value
    if wall <= 0 or not seconds:
        return {}
    shares = {f"phase_{name}_share": value / wall for name, value in seconds.items()}
    return {**shares, "phase_other_share": max(0.0, 1.0 - sum(shares.values()))}


def _epoch_rows(row: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = (
        "epoch",
        "lr",
        "train_loss",
        "train_acc",
        "test_loss",
        *ACCURACY_METRICS,
        "epoch_time_s",
        "train_clips_per_s",
        "achieved_gflops_per_s",
        "efficiency",
        "time_total_s",
        "status",
    )
    ident = {k: row[k] for k in ("trial_id", "family", "width", "arch_key", "seed")}
    out = []
    for record in records:
        epoch_row = {**ident, **{k: record.get(k, math.nan) for k in keys}}
        epoch_row["train_error"] = 1 - record["train_acc"] if record.get("train_acc") is not None else math.nan
        epoch_row["test_error"] = 1 - record["clip@1"] if record.get("clip@1") is not None else math.nan
        out.append(epoch_row)
    return out


# ------------------------------------------------------------------------------------------ one run


def dataset_name(experiment: dict[str, Any] | None, data: dict[str, Any] | None) -> str | None:
    """The dataset label: the experiment's own name for it, else (for a search run whose data is
    reachable) the dataset's own `label` in starch_dataset.json, else the data format (ucf101 …)."""
    exp = experiment or {}
    for value in (
        exp.get("dataset"),
        (exp.get("data") or {}).get("dataset") if isinstance(exp.get("data"), dict) else None,
        (exp.get("data") or {}).get("name") if isinstance(exp.get("data"), dict) else None,
    ):
        if isinstance(value, dict):
            value = value.get("name") or value.get("format")
        if isinstance(value, str) and value:
            return value
    if experiment is not None:  # a search run: the dataset may say what it is (starch data synth does)
        label = _dataset_label((exp.get("data") or {}).get("root") if isinstance(exp.get("data"), dict) else None)
        if label:
            return label
    return (data or {}).get("format")


def _dataset_label(root: Any) -> str | None:
    """`label` of ROOT/starch_dataset.json ("synthetic-motion"), when the data is reachable from here."""
    if not isinstance(root, str) or not root or is_uri(root):
        return None
    try:
        label = json.loads((Path(root) / "starch_dataset.json").read_text()).get("label")
    except (OSError, ValueError, AttributeError):
        return None
    return label if isinstance(label, str) and label else None


def gpus_per_trial(experiment: dict[str, Any] | None) -> float | None:
    """GPUs one trial held, from the experiment config (None when it does not say).

    starch_experiment.json's `resources: {gpus_per_trial, workers_per_trial}` gives GPUs per worker
    times data-parallel workers, as search/run.py counts them; `gpus` / `num_gpus` are read too.
    """
    exp = experiment if isinstance(experiment, dict) else {}
    for section in (exp.get("resources"), exp.get("resources_per_trial"), exp):
        if not isinstance(section, dict):
            continue
        workers = _number(section.get("workers_per_trial")) or 1
        for key in ("gpus_per_trial", "gpus_per_worker", "gpus", "num_gpus", "gpu"):
            if _number(section.get(key)) is not None:
                return _number(section.get(key)) * workers
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _unwritten_rows(starch_trials: dict[str, dict[str, Any]], listed: set[str]) -> list[dict[str, Any]]:
    """Trials the driver listed in starch_trials.json whose folder is not there (a full disk, or a
    storage lost before Tune wrote it): shown with the driver's word for them, not left out."""
    rows = []
    for tid, entry in sorted(starch_trials.items()):
        if tid in listed:
            continue
        status, _ = _status([], None, entry, bool(entry.get("error")))
        rows.append(
            {
                "trial_id": tid,
                "trial_dir": None,
                "family": entry.get("arch_name"),
                **flatten_arch({}),
                "params": math.nan,
                "gflops": math.nan,
                **_metrics([]),
                "epochs": entry.get("epoch") or 0,
                "status": status,
                "reason": entry.get("error") or "no trial folder on the storage (not written: full disk?)",
                "bad_videos": 0,
                "short_videos_dropped": 0,
                "missing_videos": 0,
                "data_problems": {},
                "preemptions": int(entry.get("preemptions") or 0),
                "errors": int(entry.get("failures") or 0),
                "arch_key": arch_key({}),
            }
        )
    return rows


def _infeasible_rows(path: Path, skipped: list[str]) -> list[dict[str, Any]]:
    entries = _read_json(path / INFEASIBLE_FILE, skipped) or []
    rows = []
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            skipped.append(f"{path / INFEASIBLE_FILE} entry {i}: not an object; skipped")
            continue
        arch = entry.get("arch") or {}
        rows.append(
            {
                "trial_id": f"infeasible_{i}",
                "trial_dir": None,
                "family": arch.get("name"),
                **flatten_arch(arch),
                "params": math.nan,
                "gflops": math.nan,
                **_metrics([]),
                "epochs": 0,
                "status": "infeasible",
                "reason": entry.get("reason"),
                "bad_videos": 0,
                "short_videos_dropped": 0,
                "missing_videos": 0,
                "data_problems": {},
                "preemptions": 0,
                "errors": 0,
                "arch_key": arch_key(arch),
            }
        )
    return rows


def read_run(run_dir: str | Path, *, dataset: str | None = None) -> Run:
    """Read one run folder (or URI, see analysis.remote). Raises only when `run_dir` is not a run;
    everything else is skipped and said."""
    notes: list[str] = []
    if is_uri(run_dir):
        path = fetch(str(run_dir))
        notes.append(f"{run_dir}: result files copied to {path} (checkpoints not downloaded)")
    else:
        path = Path(run_dir).expanduser()
    folders = _check_run_dir(path)
    skipped: list[str] = []
    experiment = _read_json(path / EXPERIMENT_FILE, skipped)
    starch_list = _read_json(path / TRIALS_FILE, skipped)
    starch_trials = {str(t.get("trial_id")): t for t in starch_list or [] if isinstance(t, dict)}
    ray_statuses, state_file = _ray_statuses(path, skipped)  # for trials starch_trials.json lacks
    gpus = gpus_per_trial(experiment)
    rows, epoch_rows, inferred, data = [], [], [], None
    for folder in folders:
        row, records, was_inferred = read_trial(
            folder, ray_statuses=ray_statuses, starch_trials=starch_trials, gpus=gpus, skipped=skipped
        )
        data = data or (_read_json(folder / "params.json", []) or {}).get("data")
        rows.append(row)
        epoch_rows.extend(_epoch_rows(row, records))
        if was_inferred:
            inferred.append(row["trial_id"])
    rows.extend(_unwritten_rows(starch_trials, {row["trial_id"] for row in rows}))
    rows.extend(_infeasible_rows(path, skipped))
    _source_notes(path, experiment, starch_trials, state_file, inferred, gpus, folders, notes)
    name = (experiment or {}).get("name") or path.name
    label = dataset or dataset_name(experiment, data) or path.name
    trials = pd.DataFrame(rows, columns=_columns(rows))
    epochs = pd.DataFrame(epoch_rows)
    for frame in (trials, epochs):
        frame.insert(0, "dataset", label)
        frame.insert(0, "run", name)
    return Run(
        path=path,
        name=name,
        dataset=label,
        experiment=experiment,
        trials=trials,
        epochs=epochs,
        skipped=skipped,
        notes=notes,
        data=data,
    )


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return columns or ["trial_id", "status"]


def _source_notes(path, experiment, starch_trials, state_file, inferred, gpus, folders, notes) -> None:
    if not folders and not starch_trials:
        notes.append(f"{path.name}: no trial folder yet (the run has not started a trial)")
    elif not folders:
        notes.append(f"{path.name}: no trial folder, though starch_trials.json lists {len(starch_trials)} trial(s)")
    if experiment is None:
        notes.append(f"{path.name}: no starch_experiment.json; dataset label taken from the trials' data format")
    if not starch_trials:
        source = f"Ray's {state_file}" if state_file else "the trial folders"
        notes.append(f"{path.name}: no starch_trials.json; trial status taken from {source}")
    if inferred:
        notes.append(
            f"{path.name}: status of {len(inferred)} trial(s) inferred from files (error.txt = errored; "
            f"last record still 'running' = stopped early): {', '.join(inferred[:8])}"
            f"{' …' if len(inferred) > 8 else ''}"
        )
    if gpus is None:
        notes.append(f"{path.name}: GPUs per trial not recorded, so GPU-hours are not shown")
    launches = len(list(path.glob("experiment_state-*.json")))
    if launches > 1:
        notes.append(
            f"{path.name}: {launches} experiment_state files (the run was started or resumed "
            f"{launches} times); trials of every launch are included"
        )


# ------------------------------------------------------------------------------------------ several runs


def read_runs(run_dirs: str | Path | Iterable[str | Path], *, datasets: Iterable[str] | None = None) -> list[Run]:
    """Read several runs; runs of different datasets that resolve to one label get the run name added."""
    paths = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if not paths:
        raise ValueError("no run folder given")
    labels = list(datasets) if datasets is not None else [None] * len(paths)
    if len(labels) != len(paths):
        raise ValueError(f"{len(labels)} dataset label(s) for {len(paths)} run folder(s); give one per run")
    runs = [read_run(p, dataset=d) for p, d in zip(paths, labels)]
    if datasets is None:
        _disambiguate(runs)
    return runs


def _data_identity(run: Run) -> str | None:
    """Which videos a run used (format, root, split): runs that share it may share a label."""
    data = run.data
    return json.dumps([data.get(k) for k in ("format", "root", "split")]) if isinstance(data, dict) else None


def _disambiguate(runs: list[Run]) -> None:
    by_label: dict[str, set] = {}
    for run in runs:
        by_label.setdefault(run.dataset, set()).add(_data_identity(run))
    for run in runs:
        if len(by_label[run.dataset]) > 1:
            run.notes.append(
                f"{run.name}: dataset label {run.dataset!r} is shared by runs on other videos; "
                f"labelled {run.dataset} ({run.name})"
            )
            run.dataset = f"{run.dataset} ({run.name})"
            for frame in (run.trials, run.epochs):
                if "dataset" in frame:
                    frame["dataset"] = run.dataset


def load(run_dirs, *, datasets: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per trial (and per infeasible sample) of every run, with `run` and `dataset` columns.

    `df.attrs["skipped"]` and `df.attrs["notes"]` list what was not read and what was inferred.
    """
    return combine(read_runs(run_dirs, datasets=datasets))[0]


def load_epochs(run_dirs, *, datasets: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per trial × reported epoch (train/test loss and error, accuracies, LR, time)."""
    return combine(read_runs(run_dirs, datasets=datasets))[1]


def combine(runs: list[Run]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, epochs) of several runs, with a display `label` per network (see `labels`)."""
    frames = [r.trials for r in runs if len(r.trials)]
    trials = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["run", "dataset", "trial_id", "family", "status"])
    )
    trials["label"] = labels(trials) if len(trials) else pd.Series(dtype=object)
    frames = [r.epochs for r in runs if len(r.epochs)]
    epochs = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["run", "dataset", "trial_id", "family", "epoch"])
    )
    by_trial = dict(zip(zip(trials["run"], trials["trial_id"]), trials["label"]))
    epochs["label"] = [by_trial.get((r, t), f) for r, t, f in zip(epochs["run"], epochs["trial_id"], epochs["family"])]
    for frame in (trials, epochs):
        frame.attrs["skipped"] = [s for r in runs for s in r.skipped]
        frame.attrs["notes"] = [n for r in runs for n in r.notes]
    return trials, epochs


# ------------------------------------------------------------------------------------------ labels

AXIS_SHORT = {
    "width": "k",
    "frames": "L",
    "sampling_rate": "s",
    "crop": "crop",
    "blocks": "blocks",
    "block": "",
    "bottleneck_ratio": "γb",
    "temporal_stride": "tstride",
    "convs": "",
    "stem_kernel": "stem",
    "stem_stride": "stem/",
    "stem_pool": "pool",
    "stem_mid": "mid",
}


def labels(df: pd.DataFrame) -> pd.Series:
    """A display label per row: the family, plus the axes that tell its networks apart (`SR18 s=4`).

    Width k is left out when the other varying axes already determine it (a budget-solved k).
    """
    out = pd.Series(df["family"].fillna("?").astype(str), index=df.index)
    for family, group in df.groupby(out, sort=False):
        varying = [a for a in AXIS_SHORT if a in group and group[a].astype(str).nunique() > 1]
        others = [a for a in varying if a != "width"]
        if (
            "width" in varying
            and others
            and (group.groupby([group[a].astype(str) for a in others])["width"].nunique() <= 1).all()
        ):
            varying.remove("width")
        for index, row in group.iterrows():
            parts = [f"{AXIS_SHORT[a]}={row[a]}" if AXIS_SHORT[a] else str(row[a]) for a in varying]
            out[index] = " ".join([str(family), *parts])
    return out
