"""search.journal.DriverJournal: the study it writes is the study Optuna's own file backend reads,
also when another process writes the same journal meanwhile; it reads the file only when someone
else wrote, and fsyncs only when asked (Tune's checkpoint of the searcher)."""

from __future__ import annotations

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


def test_no_fsync_per_operation_and_one_when_the_searcher_is_checkpointed(tmp_path, monkeypatch):
    from search.config import load_experiment
    from search.tuner import make_searcher

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
    assert synced == []
    searcher.save(str(tmp_path / "searcher.pkl"))
    assert len(synced) == 1
    study = optuna.load_study(
        study_name="j", storage=JournalStorage(JournalFileBackend(str(tmp_path / "j" / "optuna_study.log")))
    )
    # 4 trials, and the repeats of a run configuration the searcher told Optuna without running them
    assert len(study.trials) >= 4 and {t.state for t in study.trials} == {TrialState.COMPLETE}


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
