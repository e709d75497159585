"""starch_trials.json is rewritten at most once per interval, and always complete at the end."""

import json
from types import SimpleNamespace

from search.progress import TrialsFileCallback


def _trial(tid: str, status: str = "RUNNING", epoch: int | None = None):
    last = {"epoch": epoch, "status": "completed", "arch_name": "R3D"} if epoch else {}
    return SimpleNamespace(
        trial_id=tid,
        status=status,
        last_result=last,
        config={"recipe": {"epochs": 2}},
        path=f"/x/{tid}",
        error_file=None,
    )


def _read(tmp_path):
    return {t["trial_id"]: t for t in json.loads((tmp_path / "starch_trials.json").read_text())}


def test_rewrites_are_throttled_and_the_end_writes_everything(tmp_path, monkeypatch):
    writes = []
    cb = TrialsFileCallback(str(tmp_path), min_interval_s=3600)
    original = cb._write
    monkeypatch.setattr(cb, "_write", lambda: (writes.append(1), original()))
    trials = [_trial(f"t{i}") for i in range(50)]
    for t in trials:
        cb.on_trial_start(0, trials, t)
    assert len(writes) == 1  # the first event writes; the next 49 fall inside the interval
    assert set(_read(tmp_path)) == {"t0"}
    done = [_trial(t.trial_id, "TERMINATED", epoch=2) for t in trials]
    for t in done:
        cb.on_trial_complete(0, done, t)
        cb.on_step_end(0, done)
    assert len(writes) == 1
    cb.on_experiment_end(done)
    assert len(writes) == 2
    final = _read(tmp_path)
    assert set(final) == {t.trial_id for t in trials}
    assert all(t["status"] == "TERMINATED" and t["epoch"] == 2 and not t["stopped_early"] for t in final.values())


def test_a_step_after_the_interval_writes_pending_events(tmp_path):
    cb = TrialsFileCallback(str(tmp_path), min_interval_s=0.0)
    t = _trial("a")
    cb.on_trial_start(0, [t], t)
    assert _read(tmp_path)["a"]["status"] == "RUNNING"
    cb.min_interval_s = 3600
    done = _trial("a", "TERMINATED", epoch=2)
    cb.on_trial_complete(0, [done], done)  # inside the interval: not yet on disk
    assert _read(tmp_path)["a"]["status"] == "RUNNING"
    cb.min_interval_s = 0.0
    cb.on_step_end(1, [done])
    assert _read(tmp_path)["a"]["status"] == "TERMINATED"
