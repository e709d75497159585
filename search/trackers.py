"""Where a run is logged besides its own folder: TensorBoard (default), MLflow, Weights & Biases.

Each tracker is one of Ray Tune's logger callbacks, chosen by the experiment's `logging:` section:

    logging:
      tensorboard: true                                    # events.out.tfevents.* beside result.json
      mlflow: {tracking_uri: file:///srv/mlruns, experiment_name: conv-mixture}   # pip install 'starch[mlflow]'
      wandb: {project: starch, mode: offline}                                      # pip install 'starch[wandb]'

Tune's callbacks log every number of a result under its raw key; these subclasses log what a
researcher compares (loss, clip@1, video@1, lr, epoch time, clips/s) under readable names, per
epoch, and the experiment's axes (network, depth, frames, …, and the solved width k) as the
hyperparameters of each trial — TensorBoard's HParams tab and the MLflow/W&B run tables then
compare networks directly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from typing import Any

from ray.tune.logger import TBXLoggerCallback

from search.config import Experiment

# result key (trainers/loop.py record) -> the name shown in the trackers
READABLE = {
    "train_loss": "loss/train",
    "test_loss": "loss/test",
    "train_acc": "accuracy/train",
    "clip@1": "accuracy/clip_top1",  # TensorBoard tags may not hold '@' (it would show clip_1)
    "video@1": "accuracy/video_top1",
    "video@5": "accuracy/video_top5",
    "lr": "lr",
    "epoch_time_s": "time/epoch_s",
    "train_clips_per_s": "time/train_clips_per_s",
}
EXTRAS = {"mlflow": ("mlflow", "starch[mlflow]"), "wandb": ("wandb", "starch[wandb]")}


def readable_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numbers of one epoch's result under their readable names (missing or non-numbers left out)."""
    out = {}
    for key, name in READABLE.items():
        value = result.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            out[name] = float(value)
    return out


def trial_hparams(config: dict[str, Any], result: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trial's point of the space: its axes (grid: config.candidate.axes; Optuna: config.axes),
    the repeat, and the width k the trial solved. Lists and mappings (blocks, a network given as
    a mapping) become their JSON text: trackers take scalars only."""
    cand = config.get("candidate") or {}
    axes = dict(cand.get("axes") or config.get("axes") or {})
    if "repeat" in cand:
        axes["repeat"] = cand["repeat"]
    if result and result.get("width") is not None:
        axes["k"] = result["width"]
    return {
        k: (json.dumps(v, sort_keys=True) if isinstance(v, (list, tuple, dict)) else v)
        for k, v in axes.items()
        if v is not None
    }


def _step(result: dict[str, Any]) -> int:
    """The epoch is the x-axis (ASHA's time attribute too); Tune's iteration counter restarts its
    meaning after a trial is restored from a checkpoint, the epoch does not."""
    return int(result.get("epoch") or result.get("training_iteration") or 0)


class EventFile:
    """One trial's TensorBoard event file, written as the results come (tensorboardX's own
    EventsWriter and summary protos; the file TensorBoard and Tune's syncing expect:
    events.out.tfevents.*).

    Not tensorboardX's SummaryWriter: that one starts two threads and fsyncs three times per
    writer, and a search makes one writer per trial on the driver's thread (what that cost is in
    the README, "The search driver"). Each `flush()` (one per result, as Tune's logger does) puts
    the events on disk.
    """

    def __init__(self, logdir: str):
        from tensorboardX.event_file_writer import EventsWriter

        os.makedirs(logdir, exist_ok=True)
        self._events = EventsWriter(os.path.join(logdir, "events"))

    def add_summary(self, summary, global_step: int | None = None) -> None:
        from tensorboardX.proto.event_pb2 import Event

        event = Event(wall_time=time.time(), summary=summary)
        if global_step is not None:
            event.step = int(global_step)
        self._events.write_event(event)

    def add_scalar(self, tag: str, value: float, global_step: int) -> None:
        from tensorboardX.summary import scalar

        self.add_summary(scalar(tag, value), global_step)

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._events.close()


class TensorBoardCallback(TBXLoggerCallback):
    """Ray Tune's TensorBoardX logger with starch's readable tags and the axes as HParams.

    One events file per trial folder (and one more per resume: TensorBoard reads them together),
    written by `EventFile`. The HParams summary is written when a trial ends, with the final
    metrics, as Tune's does.
    """

    def log_trial_start(self, trial):
        if trial in self._trial_writer:
            self._trial_writer[trial].close()
        trial.init_local_path()
        self._trial_writer[trial] = EventFile(trial.local_path)
        self._trial_result[trial] = {}

    def log_trial_result(self, iteration: int, trial, result: dict):
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        writer, step = self._trial_writer[trial], _step(result)
        metrics = readable_metrics(result)
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, global_step=step)
        for key in ("params", "gflops"):  # the network's cost, for the HParams table
            if isinstance(result.get(key), (int, float)):
                metrics[f"cost/{key}"] = float(result[key])
        self._trial_result[trial] = {
            **self._trial_result.get(trial, {}),
            **metrics,
            "_hparams": trial_hparams(trial.config, result),
        }
        writer.flush()

    def log_trial_end(self, trial, failed: bool = False):
        if trial in self._trial_writer:
            last = self._trial_result.get(trial) or {}
            hparams = last.pop("_hparams", None) or trial_hparams(trial.config)
            metrics = {k: v for k, v in last.items() if isinstance(v, float)}
            if metrics:
                from tensorboardX.summary import hparams as hparams_summary

                for summary in hparams_summary(hparam_dict=hparams, metric_dict=metrics):
                    self._trial_writer[trial].add_summary(summary)
            self._trial_writer[trial].close()
            del self._trial_writer[trial]
            self._trial_result.pop(trial, None)


def require_extra(tracker: str) -> None:
    """A clear error naming the pip extra when a tracker's package is not installed."""
    module, extra = EXTRAS[tracker]
    if importlib.util.find_spec(module) is None:
        raise ValueError(
            f"logging.{tracker} needs the {module} package, which is not installed: "
            f"pip install '{extra}' (or pip install {module}), or remove logging.{tracker}"
        )


def tracker_callbacks(exp: Experiment) -> list:
    """The Tune callbacks of the experiment's `logging:` section."""
    cfg = exp.logging
    out: list = [TensorBoardCallback()] if cfg.tensorboard else []
    if cfg.mlflow is not None:
        require_extra("mlflow")
        out.append(mlflow_callback(exp))
    if cfg.wandb is not None:
        require_extra("wandb")
        out.append(wandb_callback(exp))
    return out


def mlflow_callback(exp: Experiment):
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class StarchMLflow(MLflowLoggerCallback):
        """Tune's MLflow logger: one MLflow run per trial, the axes as params, readable metrics per epoch."""

        def log_trial_start(self, trial):
            if trial not in self._trial_runs:
                self._trial_runs[trial] = (
                    self._earlier_run(trial)
                    or self.mlflow_util.start_run(
                        tags={
                            **self.tags,
                            "trial_name": str(trial),
                            "trial_id": trial.trial_id,
                            "starch_experiment": exp.name,
                        },
                        run_name=str(trial),
                    ).info.run_id
                )
            if not self.log_params_on_trial_end:
                self.mlflow_util.log_params(run_id=self._trial_runs[trial], params_to_log=trial_hparams(trial.config))

        def log_trial_result(self, iteration: int, trial, result: dict):
            if trial not in self._trial_runs:
                self.log_trial_start(trial)
            if result.get("width") is not None and trial not in self._k_logged:  # the width the trial solved
                self.mlflow_util.log_params(run_id=self._trial_runs[trial], params_to_log={"k": result["width"]})
                self._k_logged.add(trial)
            self.mlflow_util.log_metrics(
                run_id=self._trial_runs[trial], metrics_to_log=_mlflow_names(result), step=_step(result)
            )

        def setup(self, *args, **kwargs):
            super().setup(*args, **kwargs)
            self._k_logged: set = set()

        def _earlier_run(self, trial) -> str | None:
            """The MLflow run of this trial before `starch resume` (one run per trial, not per driver)."""
            client = self.mlflow_util._get_client()
            found = client.search_runs(
                [self.mlflow_util.experiment_id],
                filter_string=f"tags.trial_id = '{trial.trial_id}' and tags.starch_experiment = '{exp.name}'",
                max_results=1,
            )
            if not found:
                return None
            client.update_run(found[0].info.run_id, status="RUNNING")
            return found[0].info.run_id

    m = exp.logging.mlflow
    return StarchMLflow(tracking_uri=m.tracking_uri, experiment_name=m.experiment_name or exp.name, tags=dict(m.tags))


def _mlflow_names(result: dict[str, Any]) -> dict[str, float]:
    """The readable metrics and the network's cost."""
    out = readable_metrics(result)
    for key in ("params", "gflops", "width"):
        if isinstance(result.get(key), (int, float)):
            out[f"cost/{key}"] = float(result[key])
    return out


def wandb_callback(exp: Experiment):
    import os

    from ray.air.integrations.wandb import WandbLoggerCallback

    class StarchWandb(WandbLoggerCallback):
        """Tune's W&B logger: one W&B run per trial (config: the trial's config, whose `candidate.axes`
        or `axes` is its point of the space), readable metrics per epoch."""

        def setup(self, *args, **kwargs):
            # Tune asks for an API key unless WANDB_MODE says offline; the mode given here counts too
            mode, previous = self.kwargs.get("mode"), os.environ.get("WANDB_MODE")
            if mode in ("offline", "disabled"):
                os.environ["WANDB_MODE"] = mode
            try:
                super().setup(*args, **kwargs)
            finally:
                if mode in ("offline", "disabled"):
                    os.environ.pop("WANDB_MODE") if previous is None else os.environ.update(WANDB_MODE=previous)

        def log_trial_end(self, trial, failed: bool = False):
            self._ended = getattr(self, "_ended", set()) | {trial}
            super().log_trial_end(trial, failed)

        def on_experiment_end(self, trials, **info):
            # Tune ends a trial's W&B run in log_trial_end only; trials still running when the search
            # stops (Ctrl-C, time budget) would keep Tune waiting for their runs for upload_timeout
            ended = getattr(self, "_ended", set())
            for trial in [t for t in self._trial_queues if t not in ended]:
                self._signal_logging_actor_stop(trial)
            super().on_experiment_end(trials, **info)

        def log_trial_result(self, iteration: int, trial, result: dict):
            shown = {**readable_metrics(result), "epoch": _step(result)}
            for key in ("params", "gflops", "width"):
                if isinstance(result.get(key), (int, float)):
                    shown[f"cost/{key}"] = result[key]
            super().log_trial_result(iteration, trial, shown)

    w = exp.logging.wandb
    kwargs = {k: v for k, v in (("entity", w.entity), ("dir", w.dir)) if v is not None}
    return StarchWandb(project=w.project, group=w.group or exp.name, mode=w.mode, log_config=False, **kwargs)
