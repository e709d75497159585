"""Run folders on shared storage (s3://, gs://, abfs://, hdfs://, file://): the result files only.

A multi-node search writes its run folder to a cloud URI (Ray Tune requires shared storage there).
`fetch(uri)` copies the files the analysis reads — the run's own `*.json` and each trial's
`params.json`, `result.json` and `error.txt` — into a local folder and returns it; checkpoints and
pickles (the bulk of a run) are not downloaded. The file systems are pyarrow's, the ones Ray Tune
wrote through, so a URI that Ray could write to can be read back with the same credentials.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from analysis.runfolder import is_uri

TRIAL_FILES = ("params.json", "result.json", "error.txt")


def wanted(relative: str) -> bool:
    """Whether the analysis reads this file of a run (path relative to the run folder)."""
    parts = PurePosixPath(relative).parts
    if len(parts) == 1:
        return parts[0].endswith(".json")  # starch_*.json, experiment_state-*.json
    return len(parts) == 2 and parts[1] in TRIAL_FILES


def default_report_dir(run_dir: str | Path) -> Path:
    """RUN_DIR/report for a local run; ./NAME-report for a run on shared storage."""
    if is_uri(run_dir):
        return Path.cwd() / f"{PurePosixPath(str(run_dir).split('://', 1)[1].rstrip('/')).name}-report"
    return Path(run_dir) / "report"


def fetch(uri: str, into: Path | None = None) -> Path:
    """Copy the result files of the run at `uri` to `into` (default: one folder per URI under the
    system's temporary folder, replaced on every fetch so files deleted remotely do not linger);
    the local copy keeps the run's folder name, so its default name and labels are unchanged."""
    import pyarrow.fs as pafs

    try:
        fs, root = pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # an unknown scheme, missing credentials, an unreachable endpoint
        raise ValueError(f"cannot open run folder {uri!r}: {exc}") from exc
    root = root.rstrip("/")
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"run folder {uri!r} does not exist")
    name = PurePosixPath(root).name or "run"
    base = into or Path(tempfile.gettempdir()) / "starch-runs" / hashlib.sha1(uri.encode()).hexdigest()[:12]
    local = base / name
    shutil.rmtree(local, ignore_errors=True)
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        relative = info.path[len(root) :].lstrip("/")
        if info.type != pafs.FileType.File or not wanted(relative):
            continue
        target = local / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(info.path) as src:
            target.write_bytes(src.read())
    local.mkdir(parents=True, exist_ok=True)
    return local
