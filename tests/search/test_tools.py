"""A starch run opens in the tools researchers already use, read back with each tool's own reader:
TensorBoard's EventAccumulator, optuna.load_study, Ray's ExperimentAnalysis and Tuner.restore,
MLflow's client (local file store) and W&B's offline run folders.

One tiny TPE search serves the default tests: Ctrl-C (SIGINT to the driver) after the first epoch
result, then `starch resume` — so each reader also sees a resumed run. The MLflow and W&B tests
run the same search with both trackers on (`pytest -m slow`: W&B starts a process per trial).
"""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
from pathlib import Path

import pytest
from ray.tune import Callback

HAVE_MLFLOW = __import__("importlib").util.find_spec("mlflow") is not None
HAVE_WANDB = __import__("importlib").util.find_spec("wandb") is not None
NAME = "tools"
EPOCHS = 2
TRIALS = 2


class InterruptOnce(Callback):
    """Ctrl-C after the first epoch result; and a look at the Optuna study while the search runs.

    The state is the class's: Tune pickles its callbacks with the run, and `resume` brings back a
    fresh copy of this one, which must not interrupt again."""

    sent = False
    study_during: list[str] | None = None

    def __init__(self, journal: Path):
        self.journal = journal

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if InterruptOnce.sent:
            return
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        study = optuna.load_study(study_name=NAME, storage=JournalStorage(JournalFileBackend(str(self.journal))))
        InterruptOnce.study_during = [t.state.name for t in study.trials]
        InterruptOnce.sent = True
        os.kill(os.getpid(), signal.SIGINT)  # starch's handler: Tune saves its state and stops


def interrupted_and_resumed(synth_root: Path, tmp: Path, *, trackers: bool):
    """(run folder, what the interruption saw, tmp folder) of a TPE search over 4 networks of which
    2 are over the GFLOPs limit, interrupted once after its first result and resumed."""
    from search import run as starch_run
    from search.config import load_experiment
    from search.tuner import read_experiment

    logging = ["logging:", "  tensorboard: true"]
    if trackers:
        logging += [
            "  mlflow:",
            f"    tracking_uri: file://{tmp / 'mlruns'}",
            "    experiment_name: starch-tools",
            "    tags: {team: video}",
        ]
        logging += ["  wandb:", "    project: starch-tools", "    mode: offline", f"    dir: {tmp / 'wandb'}"]
    path = tmp / f"{NAME}.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: {NAME}
        space: {{network: [f-r2d, rmc3, r3d_18, r2plus1d_18], frames: 8, sampling_rate: 2, crop: 32, width: 4,
                 blocks: [1, 1, 1, 1]}}
        constraints: {{max_gflops: 0.005}}
        data: {{format: ucf101, root: {synth_root}, resize: null, num_workers: 0, batch_size: 8, eval_clips: 2}}
        schedule: {{epochs: {EPOCHS}, lr: 0.05}}
        search: {{algorithm: tpe, num_samples: {TRIALS}, seed: 2}}
        resources: {{cpus_per_trial: 1}}
        cluster: {{storage: {tmp / "runs"}}}
        """)
        + "\n".join(logging)
        + "\n"
    )
    directory = tmp / "runs" / NAME
    InterruptOnce.sent, InterruptOnce.study_during = False, None
    interrupt = InterruptOnce(directory / "optuna_study.log")
    starch_run.fit(load_experiment(path), callbacks=[interrupt])
    assert InterruptOnce.sent
    before = json.loads((directory / "starch_trials.json").read_text())
    assert any(t["status"] == "INTERRUPTED" for t in before), "the search ended before the interruption"
    starch_run.resume(directory, exp=read_experiment(directory))
    return directory, InterruptOnce, tmp


@pytest.fixture(scope="module")
def run(ray_cluster, synth_root, tmp_path_factory):
    """The run with TensorBoard only (the default logging)."""
    return interrupted_and_resumed(synth_root, tmp_path_factory.mktemp("tools"), trackers=False)


@pytest.fixture(scope="module")
def tracked_run(ray_cluster, synth_root, tmp_path_factory, monkeypatch_module):
    """The same run logged to MLflow (local file store) and W&B (offline) as well."""
    if not (HAVE_MLFLOW and HAVE_WANDB):
        pytest.skip("the mlflow and wandb extras are not installed (pip install 'starch[mlflow,wandb]')")
    monkeypatch_module.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this to use a file store
    monkeypatch_module.setenv("WANDB_SILENT", "true")
    return interrupted_and_resumed(synth_root, tmp_path_factory.mktemp("tracked"), trackers=True)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def trial_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if (p / "result.json").is_file())


def records(trial: Path) -> list[dict]:
    return [json.loads(l) for l in (trial / "result.json").read_text().splitlines() if l.strip()]


def test_every_trial_writes_tensorboard_events_with_readable_tags_and_hparams(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    directory, _, _ = run
    trials = trial_dirs(directory)
    assert len(trials) == TRIALS
    resumed = 0
    for trial in trials:
        events = list(trial.glob("events.out.tfevents.*"))
        assert events, f"no TensorBoard events in {trial}"
        resumed += len(events) > 1  # one file per driver that ran the trial
        acc = EventAccumulator(str(trial))
        acc.Reload()
        assert {
            "loss/train",
            "accuracy/clip_top1",
            "accuracy/video_top1",
            "lr",
            "time/epoch_s",
            "time/train_clips_per_s",
        } <= set(acc.Tags()["scalars"])
        recs = records(trial)  # an epoch the interruption cut short is trained (and logged) again
        last = {r["epoch"]: r for r in recs}
        loss = acc.Scalars("loss/train")  # TensorBoard keeps the later of two events at one step
        assert sorted({e.step for e in loss}) == sorted(last) == list(range(1, EPOCHS + 1))
        assert {e.step: e.value for e in loss} == pytest.approx({e: r["train_loss"] for e, r in last.items()}, rel=1e-5)
        assert acc.Scalars("accuracy/video_top1")[-1].value == pytest.approx(recs[-1]["video@1"], rel=1e-5)
        # HParams: the trial's point of the space and the solved width
        content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
        hparams = {k: (v.string_value or v.number_value) for k, v in start.hparams.items()}
        assert hparams["network"] == {"f-R2D": "f-r2d", "rMC3": "rmc3"}[recs[-1]["arch_name"]]
        assert hparams["k"] == 4 and hparams["frames"] == 8
    assert resumed >= 1, "no trial was continued by `starch resume`"


def test_an_event_file_is_written_without_threads_and_read_by_tensorboard(tmp_path):
    """search.trackers.EventFile: what tensorboardX's SummaryWriter writes, without its two threads
    per trial; each flush puts the events on disk for a reader that opens the file meanwhile."""
    import threading

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboardX.summary import hparams

    from search.trackers import EventFile

    before = threading.active_count()
    events = EventFile(str(tmp_path / "trial"))
    events.add_scalar("accuracy/video_top1", 0.25, global_step=1)
    events.add_scalar("accuracy/video_top1", 0.5, global_step=2)
    assert threading.active_count() == before
    events.flush()
    acc = EventAccumulator(str(tmp_path / "trial"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("accuracy/video_top1")] == [(1, 0.25), (2, 0.5)]
    for summary in hparams(hparam_dict={"network": "mc3"}, metric_dict={"accuracy/video_top1": 0.5}):
        events.add_summary(summary)
    events.close()
    acc.Reload()
    assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")


def test_the_optuna_study_is_on_disk_during_and_after_the_search(run):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    directory, interrupt, _ = run
    assert interrupt.study_during and "RUNNING" in interrupt.study_during  # loaded while trials ran
    study = optuna.load_study(
        study_name=NAME, storage=JournalStorage(JournalFileBackend(str(directory / "optuna_study.log")))
    )
    by_state = {s: [t for t in study.trials if t.state == s] for s in TrialState}
    assert not by_state[TrialState.RUNNING]
    # the trials Tune ran are complete, with the video@1 of their last epoch as the value
    finals = sorted(records(t)[-1]["video@1"] for t in trial_dirs(directory))
    assert sorted(t.value for t in by_state[TrialState.COMPLETE]) == pytest.approx(finals)
    # infeasible samples: pruned (never trained), the reason and the violated limit on the trial
    infeasible = json.loads((directory / "starch_infeasible.json").read_text())
    pruned = by_state[TrialState.PRUNED]
    assert infeasible and len(pruned) == len(infeasible)
    assert all("gflops over its limit" in t.user_attrs["infeasible"] for t in pruned)
    assert all(t.params["network"] in ("r3d_18", "r2plus1d_18") for t in pruned)


def test_rays_readers_open_the_run(run):
    from ray import tune
    from ray.tune import ExperimentAnalysis

    from search import trainable_for

    directory, _, _ = run
    analysis = ExperimentAnalysis(str(directory))
    df = analysis.dataframe()
    assert len(df) == TRIALS and df["epoch"].eq(EPOCHS).all()
    results = tune.Tuner.restore(str(directory), trainable=trainable_for(directory)).get_results()
    assert len(results) == TRIALS and results.errors == []
    best = results.get_best_result(metric="video@1", mode="max")
    assert best.metrics["video@1"] == max(records(t)[-1]["video@1"] for t in trial_dirs(directory))


@pytest.mark.slow
def test_mlflow_has_one_run_per_trial(tracked_run):
    from mlflow.tracking import MlflowClient

    directory, _, tmp = tracked_run
    client = MlflowClient(tracking_uri=f"file://{tmp / 'mlruns'}")
    experiment = client.get_experiment_by_name("starch-tools")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == TRIALS  # one per trial, also for the trials `starch resume` continued
    for r in runs:
        assert r.info.status == "FINISHED"
        assert r.data.tags["team"] == "video" and r.data.tags["starch_experiment"] == NAME
        assert r.data.params["network"] in ("f-r2d", "rmc3") and r.data.params["k"] == "4"
        history = client.get_metric_history(r.info.run_id, "accuracy/video_top1")
        assert max(m.step for m in history) == EPOCHS
    assert sorted(r.data.metrics["accuracy/video_top1"] for r in runs) == pytest.approx(
        sorted(records(t)[-1]["video@1"] for t in trial_dirs(directory))
    )


@pytest.mark.slow
def test_wandb_offline_has_one_run_per_trial(tracked_run):
    _, _, tmp = tracked_run
    offline = list((tmp / "wandb" / "wandb").glob("offline-run-*"))
    assert len(offline) >= TRIALS  # one per trial (a resumed trial may start a second)
    assert all(list(r.glob("*.wandb")) for r in offline)


def test_a_tracker_without_its_extra_names_the_extra(monkeypatch):
    import importlib.util

    from search.trackers import require_extra

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'starch\[mlflow\]'"):
        require_extra("mlflow")


def test_logging_section_is_validated():
    from pydantic import ValidationError

    from search.config import Experiment, format_errors

    base = {"name": "x", "space": {"network": "r3d_18"}, "data": {"format": "ucf101", "root": "/d"}}
    ok = Experiment.model_validate({**base, "logging": {"mlflow": True, "wandb": {"project": "p", "mode": "offline"}}})
    assert ok.logging.tensorboard and ok.logging.mlflow.experiment_name is None and ok.logging.wandb.mode == "offline"
    with pytest.raises(ValidationError) as exc:
        Experiment.model_validate({**base, "logging": {"wandb": {"project": "p", "mode": "offine"}, "neptune": {}}})
    text = format_errors(exc.value, "x.yaml")
    assert "logging.wandb.mode" in text and "'offine'" in text and "logging.neptune: unknown key" in text


def test_status_shows_accuracies_as_percentages(run, capsys):
    from search.cli import main

    directory, _, _ = run
    assert main(["status", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "video@1 (%)" in out
    for trial in trial_dirs(directory):
        trial_id = trial.name.split("_")[0]  # folders are <id>_<network>, status shows the id
        row = next(l for l in out.splitlines() if l.split()[:1] == [trial_id])
        assert f"{records(trial)[-1]['video@1'] * 100:.1f}" in row.split()
    assert re.search(r"^infeasible_0 .* infeasible +0 +gflops over", out, flags=re.M)  # blank, not None/nan


def test_resume_closes_the_trials_a_killed_driver_left_running(tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    from search.constraints import close_lost_trials

    journal = str(tmp_path / "optuna_study.log")
    study = optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(journal)))
    kept, lost = study.ask(), study.ask()  # the searcher's snapshot knew only the first
    searcher = type("Restored", (), {"_ot_study": study, "_ot_trials": {"t1": kept}})()
    assert close_lost_trials(searcher) == 1
    reread = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(journal)))
    states = {t.number: t.state for t in reread.trials}
    assert states == {kept.number: TrialState.RUNNING, lost.number: TrialState.FAIL}
    assert "killed" in reread.trials[lost.number].user_attrs["lost"]


def test_a_trial_optuna_already_closed_is_not_told_again_after_a_resume(tmp_path):
    """The race behind a flaky killed-driver test: Optuna's journal records a trial's end at once,
    Tune's snapshot of the searcher is older. After `starch resume` Tune runs that trial again from
    its checkpoint; telling Optuna its results again must not fail the search."""
    from search.config import load_experiment
    from search.tuner import make_searcher

    exp = load_experiment(
        "demo",
        overrides={"data.root": str(tmp_path), "search.algorithm": "tpe", "search.repeats": 1, "name": "race"},
    )
    searcher = make_searcher(exp, str(tmp_path / "race"))
    searcher.set_search_properties("video@1", "max", {})
    assert searcher.suggest("t1") is not None
    searcher.save(str(tmp_path / "snapshot.pkl"))  # Tune's last snapshot: t1 running
    searcher.on_trial_complete("t1", {"video@1": 0.5, "training_iteration": 3})  # in the journal at once
    # the driver is killed; `starch resume` restores the older snapshot and re-runs t1
    restored = make_searcher(exp, str(tmp_path / "race"))
    restored.restore(str(tmp_path / "snapshot.pkl"))
    restored.on_trial_result("t1", {"video@1": 0.5, "training_iteration": 3})
    restored.on_trial_complete("t1", {"video@1": 0.5, "training_iteration": 3})
    assert restored.suggest("t2") is not None  # the search goes on


class InterruptAfter(Callback):
    """Ctrl-C once `after` trials have completed; notes how many samples the study had pruned then."""

    sent = False
    pruned_then: int | None = None

    def __init__(self, journal: Path, after: int):
        self.journal, self.after, self.completed = journal, after, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.completed += 1
        if InterruptAfter.sent or self.completed < self.after:
            return
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
        from optuna.trial import TrialState

        study = optuna.load_study(study_name="pruned", storage=JournalStorage(JournalFileBackend(str(self.journal))))
        InterruptAfter.pruned_then = len(study.get_trials(states=(TrialState.PRUNED,)))
        InterruptAfter.sent = True
        os.kill(os.getpid(), signal.SIGINT)


def test_samples_rejected_after_a_resume_stay_in_the_infeasible_file(ray_cluster, synth_root, tmp_path, monkeypatch):
    """After `starch resume` Tune uploads the run's root .json files as they were when it resumed,
    last just before the experiment ends: the samples the resumed driver rejected must still be in
    starch_infeasible.json, one entry per PRUNED trial of the study. Instant trials (the trainable
    is replaced), one at a time, so the resumed driver samples again."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState
    from ray import tune

    from search import run as starch_run
    from search import tuner as tuner_mod
    from search.config import load_experiment

    def instant(config):
        tune.report({"epoch": 1, "video@1": 0.5, "status": "completed"})

    monkeypatch.setattr(
        tuner_mod, "make_trainable", lambda exp, indexes, directory: tune.with_resources(instant, {"cpu": 1})
    )
    path = tmp_path / "pruned.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: pruned
        space: {{network: [f-r2d, rmc3, r3d_18, r2plus1d_18], frames: 8, sampling_rate: 2, crop: 32, width: [2, 3, 4, 5],
                 blocks: [1, 1, 1, 1]}}
        constraints: {{max_gflops: 0.005}}
        data: {{format: ucf101, root: {synth_root}, resize: null, num_workers: 0, batch_size: 8}}
        schedule: {{epochs: 1}}
        search: {{algorithm: random, num_samples: 6, seed: 0}}
        resources: {{cpus_per_trial: 1, max_concurrent_trials: 1}}
        cluster: {{storage: {tmp_path / "runs"}}}
        logging: {{tensorboard: false}}
        """)
    )
    directory = tmp_path / "runs" / "pruned"
    InterruptAfter.sent, InterruptAfter.pruned_then = False, None
    starch_run.fit(load_experiment(path), callbacks=[InterruptAfter(directory / "optuna_study.log", after=2)])
    assert InterruptAfter.sent
    starch_run.resume(directory)
    study = optuna.load_study(
        study_name="pruned", storage=JournalStorage(JournalFileBackend(str(directory / "optuna_study.log")))
    )
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert len(pruned) > InterruptAfter.pruned_then, "no sample was rejected after the resume: the test proves nothing"
    infeasible = json.loads((directory / "starch_infeasible.json").read_text())
    assert len(infeasible) == len(pruned)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) >= 6
