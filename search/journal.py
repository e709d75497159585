"""The Optuna study's journal file, as the search driver writes it (`search.tuner.study_storage`).

Optuna's JournalFileBackend does three things on every storage operation: it takes the file lock
and appends the operation's log, fsyncs the file, and reads the file again to apply what it and
any other process wrote. A search driver does several such operations per trial (create, one per
parameter, the constraints, each reported value, tell); fsync and the read-back were most of what
starch's driver added to plain Ray Tune's, which keeps the study in memory (measured in the
README, "The search driver").

`DriverJournal` is that backend — same file, same format, same lock, so `optuna.load_study`,
optuna-dashboard and other writers work as before — with two changes:

- The driver's own logs are applied from memory. A read goes to the file only when the file is
  not the size this process left it (another process appended: a dashboard note, a second
  writer), and then reads every log from where this process stopped, in the file's order.
- An fsync per trial, not per log: when a log ends a trial (Optuna's SET_TRIAL_STATE_VALUES: tell,
  a pruned or failed sample) and in `sync()` (called when Tune checkpoints the searcher). Every
  append is in the operating system's page cache when it returns, so a killed driver loses
  nothing; a machine crash can lose the logs since the last trial ended (the running trials'
  parameters and reported values: `starch resume` runs those trials again).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from optuna.storages.journal import JournalFileBackend

log = logging.getLogger(__name__)
SET_TRIAL_STATE_VALUES = 6  # the op code of a log that ends a trial (Optuna's JournalOperation; the file format)


class DriverJournal(JournalFileBackend):
    """Optuna's journal file backend for the one process that drives the study (see the module)."""

    def __init__(self, file_path: str):
        super().__init__(file_path)
        self._reset()

    def _reset(self) -> None:
        self._own: list[dict[str, Any]] = []  # appended by this process, not read back yet
        self._own_from: int | None = None  # the log number of _own[0]; None: read the file
        self._size: int | None = None  # the file's size after this process's last read or append

    def __getstate__(self) -> dict[str, Any]:
        # the byte offsets of the logs are only valid for the file as it is now: an unpickled storage
        # (a restored searcher checkpoint) replays the file, which may have changed, from its start
        return {**self.__dict__, "_log_number_offset": {0: 0}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def read_logs(self, log_number_from: int):
        if log_number_from == self._own_from and os.stat(self._file_path).st_size == self._size:
            logs, end = self._own, log_number_from + len(self._own)
            self._log_number_offset.setdefault(end, self._size)  # where a read of the file resumes
            self._own, self._own_from = [], end
            return logs
        try:
            logs = list(super().read_logs(log_number_from))
        except ValueError as exc:  # json.JSONDecodeError included
            raise ValueError(
                f"{self._file_path}: a line of this Optuna journal is not a log ({exc}); the study cannot be "
                "read. Restore the file from a copy, or start the experiment again under a new name "
                "(the trials' folders are intact)"
            ) from None
        end = log_number_from + len(logs)
        self._own, self._size = [], self._log_number_offset.get(end)  # the end of the last whole log
        self._own_from = end if self._size is not None else None  # unknown: the file again next time
        return logs

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        lines = [json.dumps(log, separators=(",", ":")) for log in logs]
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        ends_a_trial = any(log.get("op_code") == SET_TRIAL_STATE_VALUES for log in logs)
        self._lock.acquire()
        try:
            with open(self._file_path, "a+b") as f:  # writes append (O_APPEND); reads and cuts the tail
                _cut_torn_tail(f, self._file_path)
                f.write(data)
                if ends_a_trial:
                    f.flush()
                    os.fsync(f.fileno())
        finally:
            self._lock.release()
        if self._own_from is not None:  # if another process appended meanwhile, the sizes differ at the next read
            self._own.extend(json.loads(line) for line in lines)  # as a reader of the file sees them
            self._size += len(data)

    def sync(self) -> None:
        """Force the journal to disk (fsync)."""
        with open(self._file_path, "ab") as f:
            os.fsync(f.fileno())


def _cut_torn_tail(f, path: str) -> None:
    """Cut a last line without its newline: every writer appends whole lines under the lock, which
    the caller holds, so such a line is what a crash or a full disk left behind mid-write. Optuna's
    reader skips it, but a log appended after it would join it into one line no reader can parse."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return
    f.seek(end - 1)
    if f.read(1) == b"\n":
        return
    keep, stop = 0, end
    while stop > 0:  # back to the last newline, a MiB at a time
        start = max(0, stop - (1 << 20))
        f.seek(start)
        at = f.read(stop - start).rfind(b"\n")
        if at >= 0:
            keep = start + at + 1
            break
        stop = start
    log.warning(
        "%s: cut %d bytes of a log that was never finished (a crash or a full disk mid-write)", path, end - keep
    )
    f.truncate(keep)
