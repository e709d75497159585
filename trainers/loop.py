"""The training loop: plain PyTorch, no Ray.

    fit(model, train_loader, eval_loaders, recipe, runtime, report=…, state=…)
        for each epoch:  set LR (a pure function of the epoch) → train one pass → every
                         `recipe.eval_every` epochs evaluate clip@1 and video@1/@5 →
                         report(record, checkpoint_state)
        returns the final status: completed | diverged | oom

`report(record, state)` is the only way results leave the loop; the caller decides where
records and checkpoints go (a folder for `starch train`, `ray.tune.report` in the Ray adapter).

Metrics (the protocol is named in every record, R(2+1)D §4.1 / Res3D §4):
    clip@1          accuracy of the centre clip (centre crop) of each test video
    video@1, @5     softmax averaged over N evenly spaced clips (centre crops) of each video
"""
from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F

from trainers import checkpoint
from trainers.device import Runtime
from trainers.recipe import Recipe

log = logging.getLogger(__name__)

Report = Callable[[dict[str, Any], dict[str, Any]], None]


class Diverged(Exception):
    pass


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)


def train_one_epoch(model, loader: Iterable[dict], optimizer, recipe: Recipe, runtime: Runtime,
                    *, progress: Callable[[Iterable], Iterable] | None = None) -> dict[str, float]:
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    batches = progress(loader) if progress else loader
    for batch in batches:
        clips = runtime.to_device(batch["video"])  # (B, C, T, H, W)
        labels = batch["label"].to(runtime.device)
        with runtime.autocast():
            logits = model(clips)  # (B, classes)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=recipe.label_smoothing)
        value = loss.item()
        if not math.isfinite(value):
            raise Diverged(f"loss became {value} after {seen} clips")
        optimizer.zero_grad(set_to_none=True)
        if runtime.scaler is not None:
            runtime.scaler.scale(loss).backward()
            runtime.scaler.unscale_(optimizer)
        else:
            loss.backward()
        if recipe.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        if runtime.scaler is not None:
            runtime.scaler.step(optimizer)
            runtime.scaler.update()
        else:
            optimizer.step()
        n = len(labels)
        total_loss += value * n
        correct += (logits.argmax(1) == labels).sum().item()
        seen += n
    elapsed = time.perf_counter() - start
    if seen == 0:
        raise RuntimeError("the training loader yielded no clip this epoch (every video was skipped?)")
    return {"train_loss": total_loss / seen, "train_acc": correct / seen, "train_clips": seen,
            "epoch_time_s": elapsed, "train_clips_per_s": seen / elapsed}


@torch.no_grad()
def evaluate_clips(model, loader: Iterable[dict], runtime: Runtime) -> dict[str, float]:
    """clip@1 and test loss over one clip per video."""
    model.eval()
    loss, correct, seen = 0.0, 0, 0
    for batch in loader:
        labels = batch["label"].to(runtime.device)
        with runtime.autocast():
            logits = model(runtime.to_device(batch["video"])).float()
        loss += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
    if seen == 0:
        raise RuntimeError("the clip@1 loader yielded no clip (every test video was skipped?)")
    return {"clip@1": correct / seen, "test_loss": loss / seen, "test_videos_clip": seen}


@torch.no_grad()
def evaluate_videos(model, loader: Iterable[dict], runtime: Runtime) -> dict[str, float]:
    """video@1 and video@5: softmax averaged over each video's clips."""
    model.eval()
    prob_sum: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = defaultdict(int)
    labels: dict[int, int] = {}
    for batch in loader:
        with runtime.autocast():
            probs = model(runtime.to_device(batch["video"])).float().softmax(1).cpu()
        for p, vid, y in zip(probs, batch["video_id"].tolist(), batch["label"].tolist()):
            prob_sum[vid] = prob_sum[vid] + p if vid in prob_sum else p.clone()
            counts[vid] += 1
            labels[vid] = y
    if not prob_sum:
        raise RuntimeError("the video@1 loader yielded no clip (every test video was skipped?)")
    vids = sorted(prob_sum)
    mean = torch.stack([prob_sum[v] / counts[v] for v in vids])  # (V, classes)
    target = torch.tensor([labels[v] for v in vids])
    top = mean.topk(min(5, mean.shape[1]), dim=1).indices
    return {"video@1": (top[:, 0] == target).float().mean().item(),
            "video@5": (top == target[:, None]).any(1).float().mean().item(),
            "test_videos": len(vids)}


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
) -> dict[str, Any]:
    model = runtime.prepare_model(model)
    optimizer = make_optimizer(model, recipe)
    start_epoch, best = 0, None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if runtime.scaler is not None and state.get("scaler"):
            runtime.scaler.load_state_dict(state["scaler"])
        checkpoint.restore_rng(state["rng"])
        start_epoch, best = state["epoch"], state.get("best")
        for loader in [train_loader, *eval_loaders.values()]:
            loader.bad_videos.update(state.get("bad_videos", {}))
        log.info("resumed from the checkpoint of epoch %d", start_epoch)
    train_model = torch.compile(model) if recipe.compile else model
    record: dict[str, Any] = {}
    for epoch in range(start_epoch, recipe.epochs):
        lr = recipe.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        train_loader.set_epoch(epoch)
        base = {**(static or {}), "epoch": epoch + 1, "lr": lr, "precision": runtime.precision}
        try:
            record = {**base, **train_one_epoch(train_model, train_loader, optimizer, recipe, runtime,
                                                progress=progress)}
            if (epoch + 1) % recipe.eval_every == 0 or epoch + 1 == recipe.epochs:
                for name, loader in eval_loaders.items():
                    loader.set_epoch(0)  # evaluation clips are the same every time
                    record.update((evaluate_clips if name == "clip" else evaluate_videos)(model, loader, runtime))
                record["eval_protocol"] = protocol
        except Diverged as exc:
            record = {**base, "status": "diverged", "reason": str(exc), **_data_stats(train_loader, eval_loaders)}
            report(record, {})
            log.warning("epoch %d diverged: %s", epoch + 1, exc)
            return record
        except RuntimeError as exc:
            if not runtime.is_oom(exc):
                raise
            record = {**base, "status": "oom", "reason": f"out of memory on {runtime.device}: {exc}".splitlines()[0],
                      **_data_stats(train_loader, eval_loaders)}
            report(record, {})
            return record
        if metric in record and (best is None or record[metric] > best):
            best = record[metric]
        record.update(status="running" if epoch + 1 < recipe.epochs else "completed",
                      best=best, **_data_stats(train_loader, eval_loaders))
        bad = {}
        for loader in [train_loader, *eval_loaders.values()]:
            bad.update(loader.bad_videos)
        report(record, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": runtime.scaler.state_dict() if runtime.scaler is not None else {},
            "rng": checkpoint.capture_rng(), "epoch": epoch + 1, "best": best, "bad_videos": bad,
        })
    return record


def _data_stats(train_loader, eval_loaders: dict[str, Any]) -> dict[str, Any]:
    bad = set(train_loader.bad_videos)
    short = set(train_loader.short_videos)
    for loader in eval_loaders.values():
        bad |= set(loader.bad_videos)
        short |= set(loader.short_videos)
    return {"bad_videos": len(bad), "short_videos_dropped": len(short)}
