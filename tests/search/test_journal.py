"""search.journal.DriverJournal: the study it writes is the study Optuna's own file backend reads,
also when another process writes the same journal meanwhile; it reads the file only when someone
else wrote, and fsyncs only when asked (Tune's checkpoint of the searcher)."""

from __future__ import annotations

import json
import os
import pickle

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from search.journal import DriverJournal

optuna.logging.set_verbosity(optuna.logging.WARNING)
# a log another process writes: set the study's user attribute k = 1 (Optuna's SET_STUDY_USER_ATTR)
FOREIGN = b'{"op_code":2,"worker_id":"other","study_id":0,"user_attr":{"k":1}}\n'


def frozen(study_or_storage, name="s"):
    """Each trial as plain data: what a reader of the journal sees."""
    study = (
        study_or_storage
        if isinstance(study_or_storage, optuna.Study)
        else optuna.load_study(study_name=name, storage=study_or_storage)
    )
    return [
        (t._trial_id, t.number, t.state, t.params, t.values, t.user_attrs, t.system_attrs, t.intermediate_values)
        for t in study.get_trials(deepcopy=False)
    ]


def drive(study: optuna.Study, trials: int, start: int = 0) -> None:
    """What the search driver does per trial: ask, sample, constrain, report, tell (some pruned, one failed)."""
    for i in range(start, start + trials):
        t = study.ask()
        t.suggest_categorical("network", ["r3d_18", "mc3", "rmc3"])
        t.suggest_categorical("width", list(range(1, 200)))
        t.set_constraint("params", -0.5 if i % 3 else 0.2)
        if i % 3 == 0:
            t.set_user_attr("infeasible", "params over its limit")
            study.tell(t, state=TrialState.PRUNED)
            continue
        t.report(0.1 * (i % 7), step=1)
        if i % 5 == 4:
            study.tell(t, state=TrialState.FAIL)
        else:
            study.tell(t, 0.1 * (i % 7))


def test_a_study_written_through_it_reads_back_equal_with_optunas_own_backend(tmp_path):
    path = str(tmp_path / "optuna_study.log")
    study = optuna.create_study(
        study_name="s", storage=JournalStorage(DriverJournal(path)), sampler=optuna.samplers.RandomSampler(seed=0)
    )
    drive(study, 25)
    reader = JournalStorage(JournalFileBackend(path))
    seen = frozen(study)
    assert len(seen) == 25 and {s for _, _, s, *_ in seen} == {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    assert frozen(reader) == seen
    # a checkpoint of the storage (Tune pickles the searcher with it) replays the same study
    assert frozen(pickle.loads(pickle.dumps(study._storage))) == seen


def test_another_writer_on_the_same_journal_is_read_in_the_files_order(tmp_path):
    """A dashboard note or a second process appending between the driver's operations: the driver
    must see those logs, and trial ids must agree with what any reader of the file replays."""
    path = str(tmp_path / "optuna_study.log")
    ours = optuna.create_study(
        study_name="s", storage=JournalStorage(DriverJournal(path)), sampler=optuna.samplers.RandomSampler(seed=0)
    )
    theirs = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)))
    for i in range(6):
        drive(ours, 2, start=2 * i)
        t = theirs.ask()  # a trial created elsewhere, between ours
        theirs.tell(t, 1.0 + i)
        theirs.set_user_attr(f"note{i}", "from the dashboard")
        ours_trial = ours.ask()  # created right after a foreign write
        ours.tell(ours_trial, 0.0)
    assert len(ours.trials) == 6 * 4
    assert ours.user_attrs == {f"note{i}": "from the dashboard" for i in range(6)}
    assert frozen(ours) == frozen(JournalStorage(JournalFileBackend(path))) == frozen(theirs)


def test_it_reads_the_file_only_when_someone_else_wrote(tmp_path, monkeypatch):
    reads = []
    original = JournalFileBackend.read_logs

    def counted(self, log_number_from):
        reads.append(log_number_from)
        return original(self, log_number_from)

    monkeypatch.setattr(JournalFileBackend, "read_logs", counted)
    path = str(tmp_path / "optuna_study.log")
    study = optuna.create_study(
        study_name="s", storage=JournalStorage(DriverJournal(path)), sampler=optuna.samplers.RandomSampler(seed=0)
    )
    first = len(reads)
    drive(study, 20)
    assert len(reads) == first, "the driver's own logs come from memory"
    with open(path, "ab") as f:  # another process appends (as optuna's own backend writes a log)
        f.write(FOREIGN)
    assert study.user_attrs == {"k": 1}
    assert len(reads) == first + 1


def test_one_fsync_per_trial_end_and_one_when_the_searcher_is_checkpointed(tmp_path, monkeypatch):
    from optuna.storages.journal._storage import JournalOperation

    from search.config import load_experiment
    from search.journal import SET_TRIAL_STATE_VALUES
    from search.tuner import make_searcher

    assert SET_TRIAL_STATE_VALUES == JournalOperation.SET_TRIAL_STATE_VALUES  # the file format's op code
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    exp = load_experiment(
        "demo", overrides={"data.root": str(tmp_path), "search.algorithm": "tpe", "search.repeats": 1, "name": "j"}
    )
    searcher = make_searcher(exp, str(tmp_path / "j"))
    searcher.set_search_properties("video@1", "max", {})
    for i in range(4):
        assert searcher.suggest(f"t{i}") is not None
        searcher.on_trial_result(f"t{i}", {"video@1": 0.5, "training_iteration": 1, "epoch": 1})
        searcher.on_trial_complete(f"t{i}", {"video@1": 0.5, "training_iteration": 1, "epoch": 1})
    journal = tmp_path / "j" / "optuna_study.log"
    logs = journal.read_text().splitlines()
    ends = sum(json.loads(line)["op_code"] == SET_TRIAL_STATE_VALUES for line in logs)
    assert len(synced) == ends < len(logs)  # one per trial that ended, not one per log
    searcher.save(str(tmp_path / "searcher.pkl"))
    assert len(synced) == ends + 1
    study = optuna.load_study(study_name="j", storage=JournalStorage(JournalFileBackend(str(journal))))
    # 4 trials, and the repeats of a run configuration the searcher told Optuna without running them
    assert len(study.trials) == ends >= 4 and {t.state for t in study.trials} == {TrialState.COMPLETE}


def test_the_driver_sees_its_own_values_as_a_reader_of_the_file_does(tmp_path):
    """Its own logs come from memory, decoded from the JSON it wrote: a tuple is a list, an int key a
    string, and a list changed after it was stored stays as stored."""
    path = str(tmp_path / "optuna_study.log")
    study = optuna.create_study(study_name="s", storage=JournalStorage(DriverJournal(path)))
    trial, history = study.ask(), [1, 2]
    trial.set_user_attr("pair", (1, 2))
    trial.set_user_attr("by_epoch", {1: "a"})
    trial.set_user_attr("history", history)
    history.append(3)
    study.tell(trial, 0.5)
    assert study.trials[0].user_attrs == {"pair": [1, 2], "by_epoch": {"1": "a"}, "history": [1, 2]}
    assert frozen(study) == frozen(JournalStorage(JournalFileBackend(path)))


def test_a_checkpointed_storage_replays_the_file_as_it_is_when_restored(tmp_path):
    """The byte offsets of the logs are not pickled: a journal restored from a copy (shorter than
    when the searcher was checkpointed) is read from its start."""
    path = tmp_path / "optuna_study.log"
    study = optuna.create_study(study_name="s", storage=JournalStorage(DriverJournal(str(path))))
    drive(study, 3)
    copy = path.read_bytes()
    drive(study, 3, start=3)
    snapshot = pickle.dumps(study._storage)
    path.write_bytes(copy)  # the file restored from the older copy
    restored = pickle.loads(snapshot)
    assert len(frozen(restored)) == 3
    other = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path))))
    other.set_user_attr("note", "x" * 500)  # someone appends (other logs than the lost ones) …
    drive(other, 2, start=7)
    assert restored.get_study_user_attrs(0) == {"note": "x" * 500}  # … read from where it stopped
    assert frozen(restored) == frozen(JournalStorage(JournalFileBackend(str(path))))
    assert len(frozen(restored)) == 5


@pytest.mark.parametrize("cut", [1, 17])
def test_a_half_written_foreign_log_is_read_once_it_is_whole(tmp_path, cut):
    path = str(tmp_path / "optuna_study.log")
    study = optuna.create_study(study_name="s", storage=JournalStorage(DriverJournal(path)))
    drive(study, 2)
    line = FOREIGN
    with open(path, "ab") as f:
        f.write(line[:cut])  # another writer, caught mid-write
    assert study.user_attrs == {}
    with open(path, "ab") as f:
        f.write(line[cut:])
    drive(study, 1, start=2)
    assert study.user_attrs == {"k": 1}
    assert frozen(study) == frozen(JournalStorage(JournalFileBackend(path)))


def test_a_log_a_crash_left_half_written_is_cut_before_the_next_append(tmp_path, caplog):
    """Optuna's reader skips a torn last line, but Optuna's own backend then appends after it and
    joins the two into a line no reader can parse (the study is lost); the driver's journal cuts it."""
    path = str(tmp_path / "optuna_study.log")
    study = optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)))
    drive(study, 3)
    with open(path, "ab") as f:
        f.write(b'{"op_code":4,"worker_id":"crashed","study_id":0,"dat')  # the driver died mid-write
    ours = optuna.load_study(study_name="s", storage=JournalStorage(DriverJournal(path)))
    with caplog.at_level("WARNING", logger="search.journal"):
        drive(ours, 2, start=3)
    assert "never finished" in caplog.text and path in caplog.text
    assert len(frozen(JournalStorage(JournalFileBackend(path)))) == 5
    assert frozen(ours) == frozen(JournalStorage(JournalFileBackend(path)))


def test_a_corrupt_journal_names_the_file(tmp_path):
    path = tmp_path / "optuna_study.log"
    study = optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path))))
    drive(study, 3)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2] + ["{not a log\n"] + lines[2:]))
    with pytest.raises(ValueError, match=r"optuna_study\.log: a line of this Optuna journal is not a log"):
        optuna.load_study(study_name="s", storage=JournalStorage(DriverJournal(str(path))))


def test_a_restored_searcher_keeps_the_samples_rejected_after_its_checkpoint(tmp_path, caplog):
    """A driver killed after rejecting samples but before Tune's next checkpoint of the searcher:
    starch_infeasible.json (written at each rejection) lists more than the checkpoint, and wins."""
    from search.constraints import recorded_infeasible

    a, b = {"axes": {"network": "r3d_18"}, "reason": "x"}, {"axes": {"network": "mc3"}, "reason": "y"}
    assert recorded_infeasible(str(tmp_path), [a]) == [a]  # no file
    (tmp_path / "starch_infeasible.json").write_text(json.dumps([a, b]))
    assert recorded_infeasible(str(tmp_path), [a]) == [a, b]
    assert recorded_infeasible(str(tmp_path), [b]) == [b]  # not the same history: the checkpoint's
    (tmp_path / "starch_infeasible.json").write_text("[{")
    with caplog.at_level("WARNING", logger="search.constraints"):
        assert recorded_infeasible(str(tmp_path), [a]) == [a]
    assert "not valid JSON" in caplog.text
