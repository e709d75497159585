"""Driver-side callbacks: the trials file and the progress display (tqdm)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ray.tune import Callback

from analysis.runfolder import TRIALS_FILE, read_text, write_text


class TrialsFileCallback(Callback):
    """Keeps `starch_trials.json` current: status, epoch, error and early stop of every trial, the
    errors counted against max_failures (`failures`) and, apart, the lost nodes (`preemptions`).

    The file lists every trial, so rewriting it on every event would cost O(trials) per event and
    O(trials²) per search (1,000 trials: ~3,000 rewrites of a 300 kB file). It is rewritten at most
    every `min_interval_s` (from the event that finds it older, or from Tune's loop step after), and
    always at the end of the experiment, which Tune also reaches on Ctrl-C and on an error; a
    driver killed outright leaves a file at most `min_interval_s` behind its events (Ray's own
    experiment snapshot is older still).
    """

    def __init__(self, directory: str | None, min_interval_s: float = 1.0, *, max_preemptions: int = 0):
        self.directory = directory
        self.trials: dict[str, dict] = {}
        self.min_interval_s = min_interval_s
        self.max_preemptions = max_preemptions  # failures.max_preemptions
        self._dirty = False
        self._written = float("-inf")

    def setup(self, **info):
        """At the start of a run, and of `starch resume`: the preemptions counted so far (the file
        is the only record of them; Tune's experiment state does not know them)."""
        text = read_text(self.directory, TRIALS_FILE) if self.directory is not None else None
        try:
            listed = json.loads(text) if text else []
        except ValueError:  # torn by a full disk: Tune's own state decides the rest
            listed = []
        for t in listed if isinstance(listed, list) else []:
            if isinstance(t, dict) and t.get("preemptions") and "trial_id" in t:
                self.trials.setdefault(t["trial_id"], {"trial_id": t["trial_id"]})["preemptions"] = t["preemptions"]

    def node_lost(self, trial, why: str) -> bool:
        """Trial `trial` lost its node or worker (`why`); True if that is a preemption to retry
        without using a max_failures attempt (within failures.max_preemptions), recorded here."""
        entry = self.trials.setdefault(trial.trial_id, {"trial_id": trial.trial_id})
        done = entry.get("preemptions", 0)
        if 0 <= self.max_preemptions <= done:
            return False
        entry.update(preemptions=done + 1, preempted_by=why)
        self._dirty = True
        self._flush(force=True)
        return True

    def _update(self, trial, status: str | None = None, error: str | None = None, *, reported: bool = True) -> None:
        entry = self.trials.setdefault(trial.trial_id, {"trial_id": trial.trial_id})
        entry.setdefault("preemptions", 0)
        if not reported:  # a trial start: Tune's last_result would wait on the new actor for defaults
            entry.update(status=status, path=trial.path)
            entry.setdefault("stopped_early", False)
            self._dirty = True
            self._flush()
            return
        last = trial.last_result or {}
        epochs = trial.config.get("recipe", {}).get("epochs")
        entry.update(
            status=status or trial.status,
            epoch=last.get("epoch"),
            arch_name=last.get("arch_name"),
            run_status=last.get("status"),
            error=error if error is not None else entry.get("error"),
            stopped_early=bool(
                status == "TERMINATED"
                and last.get("status") == "running"
                and epochs
                and (last.get("epoch") or 0) < epochs
            ),
            path=trial.path,
            failures=getattr(trial, "num_failures", 0),  # errors counted against max_failures
        )
        self._dirty = True
        self._flush()

    def _flush(self, force: bool = False) -> None:
        if not self._dirty or (not force and time.monotonic() - self._written < self.min_interval_s):
            return
        self._write()
        self._dirty, self._written = False, time.monotonic()

    def _write(self) -> None:
        if self.directory is not None:
            write_text(
                self.directory,
                TRIALS_FILE,
                json.dumps(sorted(self.trials.values(), key=lambda t: t["trial_id"]), indent=1),
            )

    def on_step_end(self, iteration, trials, **info):
        self._flush()

    def on_experiment_end(self, trials, **info):
        """The authoritative final word: every trial the controller knows, with its status."""
        for trial in trials:
            self._update(trial, trial.status, error=self._error(trial) if trial.status == "ERROR" else None)
        self._flush(force=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._update(trial, "RUNNING", reported=False)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._update(trial, "TERMINATED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._update(trial, "ERROR", error=self._error(trial))

    @staticmethod
    def _error(trial) -> str:
        """The last line of the trial's traceback (the exception and its message)."""
        error_file = getattr(trial, "error_file", None)
        if error_file and Path(error_file).is_file():
            lines = [l for l in Path(error_file).read_text().splitlines() if l.strip()]
            if lines:
                return lines[-1]
        return "error (no error file)"


class ProgressPrinter(Callback):
    """What a search is doing, for the person who started it.

    One line per finished epoch and per trial event, each ending with the counts of trials by
    state, the best metric so far and tqdm's estimate of the time left (remaining epochs at the
    recent rate; epochs a scheduler skipped by stopping a trial count as done). On a terminal a
    tqdm bar under those lines shows the same summary and refreshes in place; in a log (stdout not
    a terminal) there is no bar, only the lines.
    """

    STATES = ("pending", "running", "finished", "stopped", "errored")
    RECOUNT_S = 10.0  # how often the counts are taken again from Tune's whole trial list

    def __init__(
        self, metric: str, *, trials: int | None = None, epochs: int | None = None, mode: str = "max", file=None
    ):
        self.metric, self.mode, self.start = metric, mode, time.time()
        self.planned, self.epochs, self.file = trials, epochs, file
        self.best: tuple[float, str] | None = None
        self.stopped: set[str] = set()
        self._bar = None
        # epochs done per trial, kept up to date from each event's own trial (an ended trial counts
        # all its epochs): a search of N trials costs O(1) per event here, not O(N)
        self._epochs_done: dict[str, int] | None = None  # None until the first event
        self._done = 0
        # each trial's state as its own events set it, and the counts of those states: O(1) per
        # event. Tune changes some states without an event (HyperBand pauses a trial after a
        # result), so the counts are taken from the whole trial list again every RECOUNT_S.
        self._states: dict[str, str] | None = None  # None until the first event
        self._tally: dict[str, int] = {}
        self._recounted = float("-inf")
        # the searcher, when it can say how many more trials it can create (`points_left()`): a
        # model-based search of a small space ends before num_samples (make_tuner sets it)
        self.searcher = None

    @classmethod
    def for_experiment(cls, exp) -> "ProgressPrinter":
        """Sized by the experiment: its planned trials (grid: the feasible points × passes; random,
        TPE, NSGA-II: num_samples, at most the space's points, as they never run one twice) × epochs."""
        trials = exp.search.num_samples
        if exp.search.algorithm == "grid":
            from search.tuner import plan

            trials *= max(1, plan(exp).feasible)
        elif exp.search.algorithm in ("random", "tpe", "nsga2"):
            trials = min(trials, exp.to_space().size)
        return cls(exp.search.metric, trials=trials, epochs=exp.schedule.epochs, mode=exp.search.mode)

    def __getstate__(self):  # Tune pickles its callbacks with the run; a live bar does not pickle
        # the counts are taken again at the first event after a restore (monotonic times do not travel);
        # the searcher is pickled by Tune itself, apart
        return {
            **self.__dict__,
            "_bar": None,
            "file": None,
            "_states": None,
            "_recounted": float("-inf"),
            "searcher": None,
        }

    def __setstate__(self, state):
        self.__dict__.update({"searcher": None, **state})  # a printer pickled before `searcher` existed

    def to_come(self, trials) -> int:
        """Trials the searcher has not created yet and still can: the plan's rest, at most the
        points the searcher has left."""
        left = max(0, (self.planned or 0) - len(trials))
        points_left = getattr(self.searcher, "points_left", None)
        return min(left, points_left()) if points_left is not None else left

    def _out(self):
        return self.file or sys.stdout

    def _tracker(self, trials):
        """A tqdm over all epochs of the search: its rate gives the estimate of the time left."""
        from tqdm import tqdm

        total = ((len(trials) + self.to_come(trials)) * self.epochs) if self.epochs else None
        if self._bar is None:
            tty = hasattr(self._out(), "isatty") and self._out().isatty()
            self._bar = tqdm(
                total=total,
                unit="epoch",
                dynamic_ncols=True,
                file=self._out() if tty else _NULL,
                smoothing=0.3,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} epochs [{elapsed}<{remaining}] {postfix}",
            )
        elif total is not None and total != self._bar.total:
            self._bar.total = total
        return self._bar

    def _count(self, trials, trial, epochs: int, ended: bool = False) -> None:
        """Epochs `trial` has done; an ended trial (finished, stopped early, diverged, errored) has
        no epochs left to run, so all of them count."""
        if self._epochs_done is None:  # the first event (also after `starch resume`): the trials so far, once
            self._epochs_done = {}
            for t in trials:
                if t is not trial:
                    self._count(trials, t, self._epoch(t), ended=t.status in ("TERMINATED", "ERROR"))
        epochs = max(self.epochs or 0, epochs) if ended else epochs
        before = self._epochs_done.get(trial.trial_id, 0)
        if epochs > before:
            self._epochs_done[trial.trial_id] = epochs
            self._done += epochs - before

    def _advance(self, trials) -> None:
        bar = self._tracker(trials)
        bar.update(max(0, self._done - bar.n))
        bar.set_postfix_str(self.summary(trials), refresh=bar.fp is not _NULL)

    @staticmethod
    def _epoch(trial) -> int:
        return int((trial.last_result or {}).get("epoch") or 0)

    def _state(self, trial) -> str:
        if trial.status == "ERROR":
            return "errored"
        if trial.status == "TERMINATED":
            return "stopped" if trial.trial_id in self.stopped else "finished"
        return "running" if trial.status == "RUNNING" else "pending"

    def _recount(self, trials) -> None:
        self._states = {t.trial_id: self._state(t) for t in trials}
        self._tally = dict.fromkeys(self.STATES, 0)
        for state in self._states.values():
            self._tally[state] += 1
        self._recounted = time.monotonic()

    def _set_state(self, trials, trial, state: str) -> None:
        if self._states is None:
            self._recount(trials)
        before = self._states.get(trial.trial_id)
        if before is not None:
            self._tally[before] -= 1
        self._states[trial.trial_id] = state
        self._tally[state] += 1

    def counts(self, trials) -> dict[str, int]:
        if self._states is None:
            self._recount(trials)
        out = dict(self._tally)
        out["pending"] += max(0, len(trials) - len(self._states))  # created by Tune since: no event yet
        out["pending"] += self.to_come(trials)
        return out

    def summary(self, trials) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.counts(trials).items())
        best = ""
        if self.best is not None:
            value, label = self.best
            shown = f"{value * 100:.1f}%" if self.metric in ("clip@1", "video@1", "video@5") else f"{value:.4g}"
            best = f"; best {self.metric} {shown} ({label})"
        eta = ""
        if self._bar is not None and self._bar.total:
            d = self._bar.format_dict
            rate = d.get("rate") or (d["n"] / d["elapsed"] if d["elapsed"] and d["n"] else None)
            if rate:
                from tqdm import tqdm

                eta = f"; ~{tqdm.format_interval((d['total'] - d['n']) / rate)} left"
        return counts + best + eta

    def _t(self) -> str:
        return f"[{time.time() - self.start:6.0f}s]"

    def _print(self, text: str, trials) -> None:
        line = f"{self._t()} {text}  ({self.summary(trials)})"
        if self._bar is not None and self._bar.fp is not _NULL:
            self._bar.write(line, file=self._out())  # above the bar, which then redraws
        else:
            print(line, file=self._out(), flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._set_state(trials, trial, "running")

    def on_trial_recover(self, iteration, trials, trial, **info):  # failed, to be retried
        self._set_state(trials, trial, "pending")

    def on_step_end(self, iteration, trials, **info):
        if self._states is not None and time.monotonic() - self._recounted >= self.RECOUNT_S:
            self._recount(trials)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._set_state(trials, trial, "running")
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and value == value:
            if self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0]):
                self.best = (float(value), f"{result.get('arch_name', '')} {trial.trial_id}".strip())
        self._count(trials, trial, int(result.get("epoch") or 0))
        self._advance(trials)
        shown = f" {self.metric}={value:.3f}" if isinstance(value, (int, float)) else ""
        self._print(
            f"{trial.trial_id} {result.get('arch_name', '')} k={result.get('width', '')} "
            f"epoch {result.get('epoch')} loss={result.get('train_loss', float('nan')):.3f}{shown}",
            trials,
        )

    def on_trial_error(self, iteration, trials, trial, **info):
        self._set_state(trials, trial, "errored")
        self._count(trials, trial, self._epoch(trial), ended=True)
        self._advance(trials)
        self._print(f"{trial.trial_id} ERROR: {TrialsFileCallback._error(trial)} (see {trial.path}/error.txt)", trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        if self.epochs and last.get("status") == "running" and self._epoch(trial) < self.epochs:
            self.stopped.add(trial.trial_id)  # a scheduler ended it before its last epoch
        self._set_state(trials, trial, "stopped" if trial.trial_id in self.stopped else "finished")
        self._count(trials, trial, self._epoch(trial), ended=True)
        self._advance(trials)
        self._print(
            f"{trial.trial_id} {last.get('arch_name', '')} "
            f"{'stopped early' if trial.trial_id in self.stopped else 'finished'}: {last.get('status')} "
            f"after {last.get('epoch')} epoch(s)",
            trials,
        )

    def on_experiment_end(self, trials, **info):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _Null:
    """tqdm's target when there is no terminal: it still keeps the rate, and draws nowhere."""

    def write(self, text):
        pass

    def flush(self):
        pass


_NULL = _Null()
