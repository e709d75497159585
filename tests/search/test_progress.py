"""The progress display: counts of trials by state, the best so far and the time left, as plain
lines in a log and as a tqdm bar refreshed in place on a terminal. Tune's callback hooks are
driven with stand-in trials (no Ray run needed)."""

from __future__ import annotations

import io
import pickle
import re
from types import SimpleNamespace

from search.progress import ProgressPrinter


class Terminal(io.StringIO):
    def isatty(self):
        return True


def trial(trial_id, status="PENDING", epoch=None):
    return SimpleNamespace(
        trial_id=trial_id,
        status=status,
        path=f"/runs/x/{trial_id}",
        last_result={"epoch": epoch, "status": "running"} if epoch else None,
    )


def drive(printer):
    """4 planned trials × 3 epochs: a finishes, b is stopped by the scheduler after epoch 1, c errors."""
    a, b, c = trial("a", "RUNNING", 1), trial("b", "RUNNING", 1), trial("c")
    trials = [a, b, c]
    printer.on_trial_result(0, trials, a, {"epoch": 1, "video@1": 0.25, "arch_name": "MC3", "train_loss": 1.5})
    printer.on_trial_result(0, trials, b, {"epoch": 1, "video@1": 0.40, "arch_name": "R3D-18", "train_loss": 1.4})
    b.status = "TERMINATED"
    printer.on_trial_complete(0, trials, b)
    for e in (2, 3):
        a.last_result = {"epoch": e, "status": "running" if e < 3 else "completed", "arch_name": "MC3"}
        printer.on_trial_result(
            0, trials, a, {"epoch": e, "video@1": 0.3 + e / 10, "arch_name": "MC3", "train_loss": 1.0}
        )
    a.status = "TERMINATED"
    printer.on_trial_complete(0, trials, a)
    c.status = "ERROR"
    printer.on_trial_error(0, trials, c)
    printer.on_experiment_end(trials)


def test_a_log_gets_plain_lines_with_counts_best_and_time_left():
    out = io.StringIO()
    drive(ProgressPrinter("video@1", trials=4, epochs=3, file=out))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 7  # one line per event, nothing redrawn
    assert "(2 pending, 2 running, 0 finished, 0 stopped, 0 errored; best video@1 25.0% (MC3 a)" in lines[0]
    assert "stopped early" in lines[2]
    assert "1 stopped" in lines[2] and "best video@1 40.0% (R3D-18 b)" in lines[2]
    assert "1 pending, 0 running, 1 finished, 1 stopped, 1 errored; best video@1 60.0% (MC3 a)" in lines[-1]
    assert all(re.search(r"~\d\d:\d\d left\)$", l) for l in lines[1:])


def test_a_terminal_gets_a_bar_refreshed_in_place():
    out = Terminal()
    drive(ProgressPrinter("video@1", trials=4, epochs=3, file=out))
    text = out.getvalue()
    assert "\r" in text  # tqdm redraws its line
    assert re.search(r"\d+/12 epochs", text)  # 4 trials × 3 epochs
    assert "1 finished, 1 stopped, 1 errored" in text


def test_the_printer_pickles_with_the_run():  # Tune stores its callbacks in tuner.pkl
    printer = ProgressPrinter("video@1", trials=2, epochs=2, file=io.StringIO())
    drive(printer)
    copy = pickle.loads(pickle.dumps(printer))
    assert copy.best == printer.best and copy._bar is None


def test_epochs_done_are_counted_from_each_event_and_after_a_resume():
    """The bar's count is kept per event (O(1) in the number of trials); a printer that starts on a
    resumed run counts the trials that ended before it once, at its first event."""
    printer = ProgressPrinter("video@1", trials=4, epochs=3, file=io.StringIO())
    drive(printer)  # a: 3 epochs, b: stopped after 1 (counts 3), c: errored before any (counts 3)
    assert printer._done == 9
    resumed = ProgressPrinter("video@1", trials=4, epochs=3, file=io.StringIO())
    done, running = trial("a", "TERMINATED", 3), trial("d", "RUNNING", 1)
    resumed.on_trial_result(0, [done, running], running, {"epoch": 2, "video@1": 0.5, "train_loss": 1.0})
    assert resumed._done == 3 + 2 and resumed._bar.n == 5


class Watched(list):
    """Tune's trial list, counting how often the printer walks it."""

    walks = 0

    def __iter__(self):
        Watched.walks += 1
        return super().__iter__()


def test_counts_follow_the_events_without_walking_every_trial():
    """The counts per state come from each event's own trial (a search of N trials pays O(1) per
    event, not O(N)), agree with Tune's statuses after every event, and a state Tune changes without
    an event (HyperBand's pause) is caught by the periodic recount."""
    import random

    def reference(trials, stopped):
        out = dict.fromkeys(ProgressPrinter.STATES, 0)
        for t in list.__iter__(trials):  # not counted as the printer's walk
            if t.status == "ERROR":
                out["errored"] += 1
            elif t.status == "TERMINATED":
                out["stopped" if t.trial_id in stopped else "finished"] += 1
            else:
                out["running" if t.status == "RUNNING" else "pending"] += 1
        out["pending"] += 60 - len(trials)
        return out

    printer = ProgressPrinter("video@1", trials=60, epochs=3, file=io.StringIO())
    rng = random.Random(0)
    trials, Watched.walks = Watched(), 0
    for i in range(50):
        trials.append(trial(f"t{i}"))
        t = trials[-1]
        t.status = "RUNNING"
        printer.on_trial_start(0, trials, t)
        epochs = rng.choice([1, 2, 3])
        for e in range(1, epochs + 1):
            t.last_result = {"epoch": e, "status": "running" if e < 3 else "completed"}
            printer.on_trial_result(0, trials, t, {"epoch": e, "video@1": rng.random(), "train_loss": 1.0})
            assert printer.counts(trials) == reference(trials, printer.stopped)
        if rng.random() < 0.2:
            t.status = "ERROR"
            printer.on_trial_error(0, trials, t)
        else:
            t.status = "TERMINATED"
            printer.on_trial_complete(0, trials, t)
        assert printer.counts(trials) == reference(trials, printer.stopped)
    assert Watched.walks <= 2  # the first event's initial count (trials and epochs), then never again
    assert 0 < len(printer.stopped) < 50
    trials[-1].status, trials[-2].status = "PAUSED", "PENDING"  # changed by Tune, no event
    printer.on_step_end(0, trials)
    assert printer.counts(trials) != reference(trials, printer.stopped)  # not yet: recounts every RECOUNT_S
    printer.RECOUNT_S = 0.0
    printer.on_step_end(0, trials)
    assert printer.counts(trials) == reference(trials, printer.stopped)


def test_pending_trials_are_bounded_by_what_the_space_can_still_give(tmp_path, synth_root):
    """Issue 27: num_samples 1,000,000,000 over a 3-point space showed "999999997 pending, ~235954h left"."""
    from ray.tune.search import Searcher

    from search.config import load_experiment
    from search.tuner import make_searcher
    from tests.search.conftest import tiny_experiment

    body = "search:\n  algorithm: tpe\n  num_samples: 1000000000\n  seed: 1\nconstraints:\n  max_gflops: 0.0070\n"
    path = tiny_experiment(tmp_path, synth_root, body=body)
    path.write_text(
        path.read_text().replace("network: [r3d_18, f-r2d, mc3]", "network: [r3d_18, f-r2d, mc3, r2plus1d_18]")
    )
    exp = load_experiment(path)
    printer = ProgressPrinter.for_experiment(exp)
    printer.file = io.StringIO()
    assert printer.counts([])["pending"] == 4  # the space's points, not num_samples
    # the searcher knows more: points that ran, and points found infeasible (r2plus1d is over the limit)
    printer.searcher = searcher = make_searcher(exp, None)
    trials = []
    while (config := searcher.suggest(f"t{len(trials)}")) != Searcher.FINISHED:
        trials.append(trial(f"t{len(trials)}"))
        assert config is not None
        assert printer.counts(trials)["pending"] == len(trials) + searcher.points_left()
    assert len(trials) == 3 and searcher.infeasible and printer.counts(trials)["pending"] == 3
    printer.on_trial_start(0, trials, trials[0])
    assert printer.counts(trials)["pending"] == 2 and printer._tracker(trials).total == 3 * 2
    assert pickle.loads(pickle.dumps(printer)).searcher is None  # Tune pickles the searcher itself
