"""How fast one architecture trains and evaluates on this machine, now: a few real steps.

    measure(arch, data, indexes, recipe) -> Speed(train_clips_per_s, eval_clips_per_s, setup_s, videos_read)

The steps are the trial's own (`trainers.loop.train_one_epoch` and `evaluate_videos` on the loaders
`run_trial` makes), cut to a few batches, with the torch threads a 1-CPU trial gets. Each pass runs
twice on the same batches: the first reads the videos (decoding them into the frame cache when it
is on), the second is timed, so the speed is the one every epoch after the first sees. What a
trial pays once — making the loaders and the model, and the first pass's extra time (decode
processes starting, videos the cache does not hold yet) — is `setup_s`.
Whatever else the machine runs at that moment slows the measurement as it will slow the trials:
that is the point (`starch demo` fits its plan to it, see search.demo_plan).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from spaces import ArchSpec, build
from trainers.data.datasets import DataSpec, VideoIndex
from trainers.data.loader import make_loader
from trainers.device import Runtime
from trainers.loop import evaluate_videos, make_optimizer, train_one_epoch
from trainers.recipe import Recipe
from trainers.trial import align


@dataclass(frozen=True)
class Speed:
    train_clips_per_s: float  # forward + backward + SGD step, clips from the frame cache
    eval_clips_per_s: float  # forward only (video@1's loader)
    setup_s: float  # loaders + model + the first passes' extra time over the timed ones
    videos_read: int  # distinct videos the first passes read (decoded then, if the cache lacked them)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    arch: ArchSpec,
    data: DataSpec,
    indexes: dict[str, VideoIndex],
    recipe: Recipe,
    *,
    batches: int = 2,
    threads: int = 1,
) -> Speed:
    """Time `batches` training and evaluation batches of `arch` (after one untimed pass over them)."""
    if batches < 1:
        raise ValueError(f"measure: batches must be >= 1, got {batches}")
    arch, data = align(arch, data, indexes["train"].num_classes)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    train = make_loader(data, "train", seed=recipe.seed, index=indexes["train"])
    video = make_loader(data, "test", seed=recipe.seed, index=indexes["test"], eval_mode="video")
    try:
        torch.manual_seed(recipe.seed)
        runtime = Runtime.select(recipe.precision)
        model = runtime.prepare_model(build(arch, zero_init_residual=recipe.zero_init_residual))
        optimizer = make_optimizer(model, recipe)
        made = time.perf_counter() - start

        def train_pass() -> tuple[float, int]:
            train.set_epoch(0)  # the same batches each time
            start = time.perf_counter()
            seen = train_one_epoch(model, itertools.islice(train, batches), optimizer, recipe, runtime)["train_clips"]
            return time.perf_counter() - start, seen

        def eval_pass() -> tuple[float, int]:
            video.set_epoch(0)
            sizes: list[int] = []
            batches_read = (sizes.append(len(b["label"])) or b for b in itertools.islice(video, batches))
            start = time.perf_counter()
            evaluate_videos(model, batches_read, runtime)
            return time.perf_counter() - start, sum(sizes)

        first_train, clips = train_pass()
        timed_train, _ = train_pass()
        first_eval, eval_clips = eval_pass()
        timed_eval, _ = eval_pass()
    finally:
        train.close()
        video.close()
        torch.set_num_threads(before)
    setup = made + max(0.0, first_train - timed_train) + max(0.0, first_eval - timed_eval)
    videos = clips + eval_clips // max(1, data.eval_clips)
    return Speed(clips / timed_train, eval_clips / timed_eval, setup, videos)
