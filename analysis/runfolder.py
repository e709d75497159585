"""A run folder's own starch files, local or on shared storage (s3://, gs://, file://…).

The run folder is the contract between the search, which writes it, and the analysis, which
reads it on a laptop without torch or Ray. Its file names and the storage helpers both sides use
live here, in analysis (analysis imports no other package of ours; search may import analysis,
DESIGN.md), so the search does not borrow them from `analysis.remote`'s download code.

Ray Tune writes the run folder through pyarrow's file systems when `cluster.storage` is a URI; the
starch files (starch_experiment.json, starch_trials.json, starch_infeasible.json) go the same way,
so `starch resume`, `starch status` and `starch report` work on a run that lives in a bucket.
Local writes are atomic (a temporary file renamed over the old one): a reader never sees half a file.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

EXPERIMENT_FILE = "starch_experiment.json"  # the validated experiment: what `starch resume` rebuilds from
TRIALS_FILE = "starch_trials.json"  # state, epoch, error and early stop of every trial
INFEASIBLE_FILE = "starch_infeasible.json"  # samples the constraints rejected before any training
ESTIMATE_FILE = "starch_estimate.json"  # the cost estimate printed at the top of the run's log (search.estimate)
OPTUNA_FILE = "optuna_study.log"  # random/TPE/NSGA-II: the Optuna study (JournalStorage), see search.tuner


# What a storage or output path's own errors ask of the user (the commands print `PATH: error; this`)
PATH_ERRORS = {
    errno.ENOSPC: "free space there",
    errno.EDQUOT: "free space there or raise the quota",
    errno.EROFS: "it is mounted read-only: make it writable or use another place",
    errno.EACCES: "make it writable by this user or use another place",
    errno.EPERM: "make it writable by this user or use another place",
    errno.ENOENT: "it is not there (any more): restore it or use another place",
    errno.ENOTDIR: "a part of the path is a file, not a folder: use another place",
    errno.EEXIST: "a file is where a folder should be: move it or use another place",
}


def path_error(exc: BaseException) -> tuple[str | None, str, str] | None:
    """(path, what went wrong, what to do) of the file-system error behind `exc`, or None: an OSError
    in its cause or context chain, or one that Ray Tune passed on as text (`[Errno 28] …: 'path'`)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in PATH_ERRORS:
            return exc.filename, exc.strerror or str(exc), PATH_ERRORS[exc.errno]
        match = re.search(r"\[Errno (\d+)\] ([^:'\n]+)(?:: '([^'\n]+)')?", str(exc))
        if match and int(match.group(1)) in PATH_ERRORS:
            return match.group(3), match.group(2).strip(), PATH_ERRORS[int(match.group(1))]
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return None


def is_uri(path: str | Path) -> bool:
    """Whether `path` names shared storage (scheme://…) rather than a local folder."""
    return "://" in str(path)


def _fs(directory: str):
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(directory)
    return fs, root.rstrip("/")


def check_storage(storage: str) -> None:
    """Raise ValueError naming `storage` when a URI cannot be reached (unknown scheme, missing bucket,
    bad credentials or endpoint), or a local path is a file, lies under one, or cannot be written:
    before Ray starts, not after it. Reads only, so a dry run writes nothing."""
    if not is_uri(storage):
        _check_local_storage(storage)
        return
    import pyarrow.fs as pafs

    problem = None
    try:
        fs, root = _fs(storage)
        if fs.type_name != "local":
            bucket = root.split("/", 1)[0]
            if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                problem = f"bucket {bucket!r} does not exist (starch does not create buckets)"
    except Exception as exc:
        problem = str(exc)
    if problem is None:
        return
    hint = ""
    if storage.startswith("s3://"):
        hint = (
            "; S3 credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws, an S3-compatible "
            "server (MinIO, Ceph) needs AWS_ENDPOINT_URL, and every node of the cluster needs the same settings"
        )
    raise ValueError(f"cluster.storage {storage!r} cannot be used: {problem}{hint}")


def _check_local_storage(storage: str) -> None:
    """The folder, or the nearest part of its path that exists, must be a folder we may write in
    (os.access: root passes a read-only folder's check, and then meets the first write's error)."""
    import os

    path = Path(storage).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under {str(existing)!r}, which is a file"
        raise ValueError(
            f"cluster.storage {storage!r} {where}, not a folder; give --storage a folder (created if missing)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"cluster.storage {storage!r}: {str(existing)!r} is not writable by this user; give --storage "
            "a folder you can write, or fix its permissions"
        )


def write_text(directory: str | Path, name: str, text: str) -> None:
    """Write `directory/name` (creating the folder)."""
    if is_uri(directory):
        fs, root = _fs(str(directory))
        fs.create_dir(root, recursive=True)
        with fs.open_output_stream(f"{root}/{name}") as out:
            out.write(text.encode())
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f".{name}.tmp"
    tmp.write_text(text)
    tmp.replace(path / name)


def read_text(directory: str | Path, name: str) -> str | None:
    """The text of `directory/name`, or None when there is no such file."""
    if is_uri(directory):
        import pyarrow.fs as pafs

        fs, root = _fs(str(directory))
        if fs.get_file_info(f"{root}/{name}").type != pafs.FileType.File:
            return None
        with fs.open_input_stream(f"{root}/{name}") as src:
            return src.read().decode()
    path = Path(directory) / name
    return path.read_text() if path.is_file() else None
