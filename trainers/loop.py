"""The training loop: plain PyTorch, no Ray.

    fit(model, train_loader, eval_loaders, recipe, runtime, report=…, state=…)
        for each epoch:  train one pass at the scheduler's LR (make_scheduler) → every
                         `recipe.eval_every` epochs evaluate clip@1 and video@1/@5 →
                         report(record, checkpoint_state)
        returns the final status: completed | diverged | oom

`report(record, state)` is the only way results leave the loop; the caller decides where
records and checkpoints go (a folder for `starch train`, `ray.tune.report` in the Ray adapter).

Data parallel (`Distributed`, world_size W > 1, torch.distributed already initialised by the
caller — Ray Train in the adapter): the model is wrapped in DistributedDataParallel and each rank
trains on its 1/W shard of every epoch (the loaders shard, see trainers.data.loader.shard_order).
Every rank takes the same number of steps (they agree before each step whether all still have a
batch) and stops together when any rank sees a non-finite loss. Evaluation is sharded by video
and the sums are all-reduced, so every rank reports the same record, counted over all test videos
once. Every rank calls `report` once per epoch; only rank 0 passes a checkpoint state.

Metrics (the protocol is named in every record, R(2+1)D §4.1 / Res3D §4):
    clip@1          accuracy of the centre clip (centre crop) of each test video
    video@1, @5     softmax averaged over N evenly spaced clips (centre crops) of each video
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from trainers import checkpoint
from trainers.data.datasets import not_a_video_file
from trainers.device import Runtime
from trainers.phases import PHASES, PhaseTimer, record_key
from trainers.prefetch import prefetch
from trainers.recipe import Recipe

log = logging.getLogger(__name__)

Report = Callable[[dict[str, Any], dict[str, Any]], None]


class Diverged(Exception):
    pass


class NoUsableVideo(RuntimeError):
    """A pass over a subset yielded no clip: every video was unusable (the message names them)."""


def _no_clip(loader, what: str) -> NoUsableVideo:
    why_empty = getattr(loader, "why_empty", None)  # a ClipLoader; tests pass plain lists of batches
    return NoUsableVideo(why_empty(what) if why_empty else f"{what} yielded no clip (every video was skipped?)")


@dataclass(frozen=True)
class Distributed:
    """Which of `world_size` data-parallel processes this one is; rank 0 writes the checkpoints.

    world_size 1 is a plain single-process trial: every collective below returns its input.
    With world_size > 1 each method is a collective: every rank must call it at the same point.
    Tensors live on `device` (the runtime's), which matches the backend Ray's TorchConfig picked
    (gloo on the CPU, nccl on CUDA).
    """

    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> "Distributed":
        """From torch.distributed if a process group is initialised, else a single process."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def reduce(self, values: list[float], op: str, device: torch.device) -> list[float]:
        """Element-wise 'sum', 'max' or 'min' of `values` over all ranks."""
        if self.world_size == 1:
            return [float(v) for v in values]
        tensor = torch.tensor(values, dtype=torch.float64, device=device)  # (len(values),)
        dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op])
        return tensor.tolist()

    def union(self, mapping: dict) -> dict:
        """All ranks' dicts merged (bad and short videos seen by any rank)."""
        if self.world_size == 1:
            return dict(mapping)
        gathered: list[dict | None] = [None] * self.world_size
        dist.all_gather_object(gathered, mapping)
        return {k: v for part in gathered for k, v in part.items()}

    def sync_buffers(self, model: torch.nn.Module) -> None:
        """Rank 0's BatchNorm statistics to every rank: DDP syncs buffers at the start of each
        training forward, so after the last step each rank still holds its own."""
        if self.world_size > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        nesterov=recipe.nesterov,
    )


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.LRScheduler:
    """The recipe's LR per epoch as torch schedulers, stepped once after each epoch: a linear
    warm-up from lr/10 (LinearLR) for `warmup_epochs`, then the schedule (StepLR ÷ lr_gamma every
    `lr_step_epochs`, CosineAnnealingLR to 0 over the remaining epochs, or constant), chained by
    SequentialLR. Its state is saved in each checkpoint, so a resumed trial continues the sequence."""
    sched = torch.optim.lr_scheduler
    after = max(1, recipe.epochs - recipe.warmup_epochs)
    if recipe.schedule == "step":
        main = sched.StepLR(optimizer, step_size=recipe.lr_step_epochs, gamma=recipe.lr_gamma)
    elif recipe.schedule == "cosine":
        main = sched.CosineAnnealingLR(optimizer, T_max=after)
    else:
        main = sched.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if not recipe.warmup_epochs:
        return main
    warmup = sched.LinearLR(optimizer, start_factor=0.1, end_factor=1.0, total_iters=recipe.warmup_epochs)
    return sched.SequentialLR(optimizer, [warmup, main], milestones=[recipe.warmup_epochs])


def resume_scheduler(scheduler, state: dict[str, Any]) -> None:
    """The scheduler of a checkpoint; one written before checkpoints held it has its epochs replayed."""
    if state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
    else:
        with warnings.catch_warnings():  # "step() before optimizer.step()": the steps were taken before
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(state["epoch"]):
                scheduler.step()


LOSS_CHECK_STEPS = 16  # the running loss is read (a host sync on a GPU) every this many steps, and at the end


def train_one_epoch(
    model,
    loader: Iterable[dict],
    optimizer,
    recipe: Recipe,
    runtime: Runtime,
    *,
    progress: Callable[[Iterable], Iterable] | None = None,
    distributed: Distributed = Distributed(),
    timer: PhaseTimer | None = None,
) -> dict[str, float]:
    """One pass over this rank's shard; the returned numbers are over all ranks.

    The loss and the hits are summed on the device and read every LOSS_CHECK_STEPS steps (and at
    the end), not per step: a non-finite loss stops the epoch within that many steps (every rank
    checks at the same steps). `timer` gets the data, h2d, forward, backward and optimizer laps."""
    model.train()
    timer = timer or PhaseTimer(runtime.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    hits = torch.zeros((), dtype=torch.long, device=runtime.device)
    seen = checked = steps = 0
    start = time.perf_counter()
    batches = iter(prefetch(progress(loader) if progress else loader, runtime))
    timer.restart()
    while True:
        batch = next(batches, None)
        # all ranks step together: stop when any rank has run out (only possible when skipped
        # bad videos shortened its shard; those ranks' last batches are then not trained on)
        if distributed.reduce([batch is None], "max", runtime.device)[0]:
            break
        timer.lap("data")
        clips = runtime.to_device(batch["video"])  # (B, C, T, H, W)
        labels = batch["label"].to(runtime.device, non_blocking=True)
        timer.lap("h2d")
        with runtime.autocast():
            logits = model(clips)  # (B, classes)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=recipe.label_smoothing)
        n = len(labels)
        loss_sum += loss.detach().double() * n
        hits += (logits.detach().argmax(1) == labels).sum()
        seen, steps = seen + n, steps + 1
        timer.lap("forward")
        optimizer.zero_grad(set_to_none=True)
        if runtime.scaler is not None:
            runtime.scaler.scale(loss).backward()
            runtime.scaler.unscale_(optimizer)
        else:
            loss.backward()
        timer.lap("backward")
        if recipe.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        if runtime.scaler is not None:
            runtime.scaler.step(optimizer)
            runtime.scaler.update()
        else:
            optimizer.step()
        if steps % LOSS_CHECK_STEPS == 0:
            _check_finite(loss_sum, checked, seen, runtime, distributed)
            checked = seen
        timer.lap("optimizer")
    if hasattr(batches, "close"):
        batches.close()  # a rank stopped early leaves its loader's generator unfinished
    if seen > checked:
        _check_finite(loss_sum, checked, seen, runtime, distributed)
    total_loss, correct, seen = distributed.reduce([loss_sum.item(), hits.item(), seen], "sum", runtime.device)
    elapsed = distributed.reduce([time.perf_counter() - start], "max", runtime.device)[0]
    if seen == 0:
        raise _no_clip(loader, "the training loader")
    return {
        "train_loss": total_loss / seen,
        "train_acc": correct / seen,
        "train_clips": int(seen),
        "epoch_time_s": elapsed,
        "train_clips_per_s": seen / elapsed,
    }


def _check_finite(loss_sum: torch.Tensor, checked: int, seen: int, runtime: Runtime, distributed: Distributed) -> None:
    """Raise Diverged on every rank if any rank's running loss is not finite (a collective)."""
    value = loss_sum.item()
    if distributed.reduce([not math.isfinite(value)], "max", runtime.device)[0]:
        where = f"loss became {value}" if not math.isfinite(value) else "the loss of another rank became non-finite"
        raise Diverged(f"{where} between clip {checked} and clip {seen} of the epoch")


@torch.no_grad()
def evaluate_clips(
    model, loader: Iterable[dict], runtime: Runtime, distributed: Distributed = Distributed()
) -> dict[str, float]:
    """clip@1 and test loss over one clip per video (sums over all ranks' shards), summed on the
    device and read once."""
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=runtime.device)  # loss, hits
    seen = 0
    for batch in prefetch(loader, runtime):
        labels = batch["label"].to(runtime.device, non_blocking=True)
        with runtime.autocast():
            logits = model(runtime.to_device(batch["video"])).float()
        sums[0] += F.cross_entropy(logits, labels, reduction="sum").double()
        sums[1] += (logits.argmax(1) == labels).sum()
        seen += len(labels)
    loss, correct = sums.tolist()
    loss, correct, seen = distributed.reduce([loss, correct, seen], "sum", runtime.device)
    if seen == 0:
        raise _no_clip(loader, "the clip@1 loader")
    return {"clip@1": correct / seen, "test_loss": loss / seen, "test_videos_clip": int(seen)}


@torch.no_grad()
def evaluate_videos(
    model, loader: Iterable[dict], runtime: Runtime, distributed: Distributed = Distributed()
) -> dict[str, float]:
    """video@1 and video@5: softmax averaged over each video's clips. A video's clips are all in
    one rank's shard, so each rank scores whole videos and the hit counts are summed.

    The softmax sums, clip counts and labels are kept on the device, indexed by video id (a batch
    may hold clips of several videos), and read once at the end."""
    model.eval()
    device = runtime.device
    sums = counts = targets = None  # (videos, classes), (videos,), (videos,), grown as ids appear
    for batch in prefetch(loader, runtime):
        vids = batch["video_id"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        with runtime.autocast():
            probs = model(runtime.to_device(batch["video"])).float().softmax(1)  # (B, classes)
        need = int(batch["video_id"].max()) + 1  # the host's copy: no device sync
        if sums is None or need > len(sums):
            size = need if sums is None else max(need, 2 * len(sums))
            sums, counts, targets = (
                _grown(sums, size, probs),
                _grown(counts, size, probs[:, 0]),
                _grown(targets, size, labels),
            )
        sums.index_add_(0, vids, probs)
        counts.index_add_(0, vids, torch.ones_like(vids, dtype=counts.dtype))
        targets[vids] = labels
    hits1 = hits5 = videos = 0
    if sums is not None:  # a rank's shard may hold no video at all
        scored = counts > 0
        mean = sums[scored] / counts[scored, None]  # (V, classes), in order of video id
        target = targets[scored]
        top = mean.topk(min(5, mean.shape[1]), dim=1).indices  # (V, k)
        hits1, hits5, videos = torch.stack(
            [(top[:, 0] == target).sum(), (top == target[:, None]).any(1).sum(), scored.sum()]
        ).tolist()
    hits1, hits5, videos = distributed.reduce([hits1, hits5, videos], "sum", runtime.device)
    if videos == 0:
        raise _no_clip(loader, "the video@1 loader")
    return {"video@1": hits1 / videos, "video@5": hits5 / videos, "test_videos": int(videos)}


def _grown(old: torch.Tensor | None, size: int, like: torch.Tensor) -> torch.Tensor:
    """Zeros of `size` rows shaped and typed as `like`'s rows, with `old` copied into the first ones."""
    new = like.new_zeros((size, *like.shape[1:]))
    if old is not None:
        new[: len(old)] = old
    return new


def fit(
    model: torch.nn.Module,
    *,
    train_loader,
    eval_loaders: dict[str, Any],  # {"clip": centre-clip loader, "video": N-clip loader}
    recipe: Recipe,
    runtime: Runtime,
    report: Report,
    state: dict[str, Any] | None = None,  # a checkpoint to resume from
    static: dict[str, Any] | None = None,  # fields added to every record (params, FLOPs, arch …)
    protocol: str = "",
    progress: Callable[[Iterable], Iterable] | None = None,
    metric: str = "video@1",
    distributed: Distributed | None = None,  # None: Distributed.current()
    setup_started: float | None = None,  # time.perf_counter() when the trial began (its "setup" phase)
) -> dict[str, Any]:
    distributed = distributed or Distributed.current()
    model = runtime.prepare_model(model)
    optimizer = make_optimizer(model, recipe)
    scheduler = make_scheduler(optimizer, recipe)
    start_epoch, best = 0, None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        resume_scheduler(scheduler, state)
        if runtime.scaler is not None and state.get("scaler"):
            runtime.scaler.load_state_dict(state["scaler"])
        checkpoint.restore_rng(state["rng"])
        start_epoch, best = state["epoch"], state.get("best")
        for loader in [train_loader, *eval_loaders.values()]:
            loader.bad_videos.update(state.get("bad_videos", {}))
        log.info("resumed from the checkpoint of epoch %d", start_epoch)
    # DDP averages gradients over ranks; `model` (unwrapped) is evaluated and checkpointed, so a
    # checkpoint of W workers and one of a single process are interchangeable
    train_model = DistributedDataParallel(model) if distributed.world_size > 1 else model
    train_model = torch.compile(train_model) if recipe.compile else train_model
    loaders = [train_loader, *eval_loaders.values()]
    record: dict[str, Any] = {}
    mark = time.perf_counter() if setup_started is None else setup_started  # end of the last phase timed
    for epoch in range(start_epoch, recipe.epochs):
        lr = optimizer.param_groups[0]["lr"]  # set by the scheduler (one group: make_optimizer)
        train_loader.set_epoch(epoch)
        base = {
            **(static or {}),
            "epoch": epoch + 1,
            "lr": lr,
            "precision": runtime.precision,
            "workers": distributed.world_size,
        }
        timer = PhaseTimer(runtime.device)
        timer.host("setup" if epoch == start_epoch else "report", time.perf_counter() - mark)
        try:
            record = {
                **base,
                **train_one_epoch(
                    train_model,
                    train_loader,
                    optimizer,
                    recipe,
                    runtime,
                    progress=progress,
                    distributed=distributed,
                    timer=timer,
                ),
            }
            distributed.sync_buffers(model)
            if (epoch + 1) % recipe.eval_every == 0 or epoch + 1 == recipe.epochs:
                evaluating = time.perf_counter()
                for name, loader in eval_loaders.items():
                    loader.set_epoch(0)  # evaluation clips are the same every time
                    evaluate = evaluate_clips if name == "clip" else evaluate_videos
                    record.update(evaluate(model, loader, runtime, distributed))
                record["eval_protocol"] = protocol
                timer.host("eval", time.perf_counter() - evaluating)
        except Diverged as exc:  # raised on every rank at the same step
            _share_data_stats(loaders, distributed)
            record = {**base, "status": "diverged", "reason": str(exc), **_data_stats(train_loader, eval_loaders)}
            report(record, {})
            log.warning("epoch %d diverged: %s", epoch + 1, exc)
            return record
        except NoUsableVideo as exc:  # the record names the videos (and the report counts them), then it fails
            _share_data_stats(loaders, distributed)
            report({**base, "status": "error", "reason": str(exc), **_data_stats(train_loader, eval_loaders)}, {})
            raise
        except RuntimeError as exc:
            # an OOM on one of W ranks would leave the others waiting in a collective: let the
            # worker fail instead; Ray Train ends the whole group and the trial's driver reports
            # status oom (ray_adapter.fit_data_parallel)
            if not runtime.is_oom(exc) or distributed.world_size > 1:
                raise
            record = {
                **base,
                "status": "oom",
                "reason": f"out of memory on {runtime.device}: {exc}".splitlines()[0],
                **_data_stats(train_loader, eval_loaders),
            }
            report(record, {})
            return record
        scheduler.step()  # the next epoch's LR
        if metric in record and (best is None or record[metric] > best):
            best = record[metric]
        _share_data_stats(loaders, distributed)
        record.update(
            status="running" if epoch + 1 < recipe.epochs else "completed",
            best=best,
            **_data_stats(train_loader, eval_loaders),
            **_phase_fields(timer, time.perf_counter() - mark, distributed, runtime.device),
        )
        mark = time.perf_counter()  # this epoch's report, checkpoint and LR step go to the next epoch's "report"
        if not distributed.is_main:
            report(record, {})  # the same record; rank 0 alone writes the checkpoint
            continue
        bad = {}
        for loader in loaders:
            bad.update(loader.bad_videos)
        report(
            record,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": runtime.scaler.state_dict() if runtime.scaler is not None else {},
                "rng": checkpoint.capture_rng(),
                "epoch": epoch + 1,
                "best": best,
                "bad_videos": bad,
            },
        )
    return record


def _phase_fields(timer: PhaseTimer, wall: float, distributed: Distributed, device: torch.device) -> dict[str, float]:
    """Every phase of trainers.phases.PHASES as `phase_<name>_s` (0.0 when it did not run this epoch)
    and `epoch_wall_s`, the time they divide: from the end of the previous epoch's record (the
    trial's start for the first) to this one. With W ranks, each the slowest rank's (a collective),
    so every rank reports the same record."""
    seconds = timer.seconds()
    values = distributed.reduce([seconds.get(p, 0.0) for p in PHASES] + [wall], "max", device)
    return {**{record_key(p): v for p, v in zip(PHASES, values)}, "epoch_wall_s": values[-1]}


def _share_data_stats(loaders: list, distributed: Distributed) -> None:
    """Every rank learns the bad and short videos any rank met (same counts in every record, and
    each rank skips them from the next epoch on). A collective."""
    if distributed.world_size == 1:
        return
    bad = distributed.union({k: v for loader in loaders for k, v in loader.bad_videos.items()})
    short = distributed.union({k: v for loader in loaders for k, v in loader.short_videos.items()})
    for loader in loaders:
        loader.bad_videos.update(bad)
        loader.short_videos.update(short)


DATA_PROBLEMS_SHOWN = 200  # file names per record; the counts stay exact


def _data_stats(train_loader, eval_loaders: dict[str, Any]) -> dict[str, Any]:
    """Counts of unusable videos, and their names with what was wrong (`data_problems`: a sorted
    list of [path, problem], at most DATA_PROBLEMS_SHOWN), so they reach the run, not only logs."""
    problems: dict[str, str] = {}
    for loader in (train_loader, *eval_loaders.values()):
        problems.update(
            {p: f"missing: listed, {not_a_video_file(p) or 'not on disk'}" for p in getattr(loader, "missing", ())}
        )
        problems.update({p: f"short: {n} frames, dropped" for p, n in loader.short_videos.items()})
        problems.update({p: f"bad: {reason}" for p, reason in loader.bad_videos.items()})
    bad = sum(v.startswith("bad") for v in problems.values())
    short = sum(v.startswith("short") for v in problems.values())
    return {
        "bad_videos": bad,
        "short_videos_dropped": short,
        "data_problems": [[p, problems[p]] for p in sorted(problems)[:DATA_PROBLEMS_SHOWN]],
    }
