"""Driver-side callbacks: the trials file and a one-line-per-event progress display."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ray.tune import Callback

from search.runfiles import TRIALS_FILE, write_text


class TrialsFileCallback(Callback):
    """Keeps `starch_trials.json` current: status, epoch, error and early stop of every trial."""

    def __init__(self, directory: str | None):
        self.directory = directory
        self.trials: dict[str, dict] = {}

    def _update(self, trial, status: str | None = None, error: str | None = None) -> None:
        last = trial.last_result or {}
        entry = self.trials.setdefault(trial.trial_id, {"trial_id": trial.trial_id})
        epochs = trial.config.get("recipe", {}).get("epochs")
        entry.update(status=status or trial.status, epoch=last.get("epoch"), arch_name=last.get("arch_name"),
                     run_status=last.get("status"), error=error if error is not None else entry.get("error"),
                     stopped_early=bool(status == "TERMINATED" and last.get("status") == "running"
                                        and epochs and (last.get("epoch") or 0) < epochs),
                     path=trial.path)
        self._write()

    def _write(self) -> None:
        if self.directory is not None:
            write_text(self.directory, TRIALS_FILE, json.dumps(sorted(self.trials.values(), key=lambda t: t["trial_id"]), indent=1))

    def on_experiment_end(self, trials, **info):
        """The authoritative final word: every trial the controller knows, with its status."""
        for trial in trials:
            self._update(trial, trial.status, error=self._error(trial) if trial.status == "ERROR" else None)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._update(trial, "RUNNING")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._update(trial, "TERMINATED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._update(trial, "ERROR", error=self._error(trial))

    @staticmethod
    def _error(trial) -> str:
        """The last line of the trial's traceback (the exception and its message)."""
        if trial.error_file and Path(trial.error_file).is_file():
            lines = [l for l in Path(trial.error_file).read_text().splitlines() if l.strip()]
            if lines:
                return lines[-1]
        return "error (no error file)"


class ProgressPrinter(Callback):
    """Prints one line per finished epoch and per trial event (readable in logs, no redraws)."""

    def __init__(self, metric: str):
        self.metric, self.start = metric, time.time()

    def _t(self) -> str:
        return f"[{time.time() - self.start:6.0f}s]"

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        shown = f"{self.metric}={value:.3f}" if isinstance(value, (int, float)) else ""
        running = sum(t.status == "RUNNING" for t in trials)
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        print(f"{self._t()} {trial.trial_id} {result.get('arch_name', '')} k={result.get('width', '')} "
              f"epoch {result.get('epoch')} loss={result.get('train_loss', float('nan')):.3f} {shown}  "
              f"({running} running, {done}/{len(trials)} done)", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        print(f"{self._t()} {trial.trial_id} ERROR (see {trial.path}/error.txt)", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        print(f"{self._t()} {trial.trial_id} {last.get('arch_name', '')} finished: {last.get('status')} "
              f"after {last.get('epoch')} epoch(s)", flush=True)
