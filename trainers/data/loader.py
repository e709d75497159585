"""Clips for training and evaluation: a torch Dataset over a VideoIndex and a loader that survives
bad videos.

    make_loader(spec, "train", seed=0)   one random clip per video per epoch, shuffled
    make_loader(spec, "test")            spec.eval_clips evenly spaced clips per video (video@1)
    make_loader(spec, "test", eval_mode="clip")   the centre clip of each video (clip@1)

    for batch in loader:                 batch["video"]    float (B, C, T, H, W), channels-last in memory
        ...                              batch["label"], batch["video_id"], batch["clip_id"]  (B,)
    loader.stats()                       bad videos (file → decoder's reason), dropped short videos

Bad-data design (decord's failure modes: #25 a corrupt H.264 stream aborts the process from C++,
#269 get_batch hangs forever, #294 readers created in a parent deadlock forked workers):

    main process ── torch DataLoader ──► worker 0 ──pipe──► decode child 0 (decord)
                                     └─► worker 1 ──pipe──► decode child 1 (decord)

- Decoding happens only in a decode child (`trainers.data.decode_process.DecodeProcess`): a fresh interpreter
  started by the DataLoader worker that uses it (or by the main process when num_workers=0), so no
  decord state is ever inherited through fork. Crops, flips and normalisation stay in the worker.
- Each sample has a time limit (spec.sample_timeout_s). A child that hangs is SIGKILLed when the
  limit passes; a child that aborts is noticed by EOF on its pipe. Either way that one sample
  fails and the next sample starts a new child (~0.15 s), so the DataLoader worker — and the
  epoch — never die. Decode errors decord does raise (missing, empty, truncated, random bytes)
  come back as the decoder's message plus what ffmpeg printed.
- A failed sample is returned as a `Skipped` record instead of a clip; `collate_clips` drops it
  from the batch and hands it to the main process, which warns ONCE per file (file + reason),
  counts it, and from the next epoch on marks the file's items as known-bad in the sampler, so
  workers skip it without decoding (within an epoch, a worker remembers its own failures: the
  10 eval clips of a hanging video cost one timeout, not ten).
  A batch whose samples all failed is not yielded at all.
- Videos shorter than a clip under the `drop` policy are Skipped(kind="short"): counted and
  summarised in one warning per epoch, not per file.

Cost (decoding): one pickled clip crosses a pipe per sample (~0.5 MB for 16×128×171×3), well under the
decode time; the child keeps one reader open, so the 10 clips of a video in eval open it once.
Workers are persistent, so workers and decode children start once per loader, not per epoch.
Determinism: the temporal jitter and the crop/flip of item i in epoch e come from
np.random.default_rng([seed, e, i]) — independent of which worker gets the item — and the
shuffle order from a torch.Generator seeded with (seed, e).

Data parallel (rank r of W, see `shard_order`): every rank computes the same epoch order and reads
only its whole videos of it; a training clip is the same whichever rank reads it.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from trainers.data.cache import FrameCache, should_cache
from trainers.data.clips import clip_span, clips_per_video, pick_clip
from trainers.data.datasets import DataSpec, VideoIndex, build_index
from trainers.data.decode_process import DecodeProcess
from trainers.data.transforms import ClipTransform
from trainers.data.video import DEFAULT_DECODER, VideoDecodeError

log = logging.getLogger(__name__)

CACHE_BUILD_TIMEOUT_FACTOR = 20  # a cache build decodes a whole video: allow 20 × sample_timeout_s
AUTO_CACHE_PROBES = 8  # videos probed to estimate a subset's decoded size


@dataclass(frozen=True)
class Skipped:
    """A sample that produced no clip: kind 'bad' (decode failed) or 'short' (dropped)."""

    path: str
    reason: str
    kind: str = "bad"
    num_frames: int = -1


class ClipDataset(Dataset):
    """Item i of an epoch → a dict with one clip, or a `Skipped` record (never raises on bad data).

    mode: 'train' (1 random clip per video), 'video' (num_clips per video, item i = clip i % N of
    video i // N), 'centre' (the centre clip).
    """

    def __init__(
        self,
        index: VideoIndex,
        *,
        # which frames
        mode: Literal["train", "video", "centre"],
        clip_len: int,
        sampling_rate: int,
        num_clips: int = 10,
        short_policy: str = "drop",
        resize: tuple[int, int] | None,
        # what is done to them
        transform: ClipTransform,
        # how they are read
        decoder: str = DEFAULT_DECODER,
        timeout_s: float = 30.0,
        cache: FrameCache | None = None,
        seed: int = 0,
    ):
        self.index = index
        self.mode, self.clip_len, self.sampling_rate = mode, clip_len, sampling_rate
        self.num_clips = clips_per_video(mode, num_clips)
        self.short_policy, self.resize = short_policy, resize
        self.transform, self.timeout_s, self.cache, self.seed = transform, timeout_s, cache, seed
        self.decoder_name = decoder
        self.epoch = 0  # used when indexed by a plain int; ClipLoader passes (epoch, i, known_bad)
        self._decoder: DecodeProcess | None = None
        self._failed: dict[str, str] = {}  # this process's failed files: eval's 10 clips fail once
        self._cache_warned = False

    def __len__(self) -> int:
        return len(self.index.videos) * self.num_clips

    def __getstate__(self):  # a DataLoader worker gets no decoder: it starts its own
        state = dict(self.__dict__)
        state["_decoder"] = None
        return state

    def __getitem__(self, item: int | tuple[int, int, bool]) -> dict | Skipped:
        epoch, i, known_bad = item if isinstance(item, tuple) else (self.epoch, item, False)
        video_id, clip_id = divmod(i, self.num_clips)
        path, label = self.index.videos[video_id]
        if known_bad:
            return Skipped(path, "already reported", kind="known")
        if path in self._failed:
            return Skipped(path, self._failed[path])
        seed = [self.seed, epoch, i]
        try:
            frames, num_frames = self._read(path, clip_id, seed)  # (T, H, W, 3) uint8
        except VideoDecodeError as exc:
            self._failed[path] = exc.reason
            return Skipped(path, exc.reason)
        if frames is None:
            return Skipped(
                path,
                f"{num_frames} frames < clip span {clip_span(self.clip_len, self.sampling_rate)}",
                "short",
                num_frames,
            )
        clip = self.transform(frames, np.random.default_rng([*seed, 1]))  # (C, T, crop, crop)
        return {"video": clip, "label": label, "video_id": video_id, "clip_id": clip_id}

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None

    # -- reading
    def decoder(self) -> DecodeProcess:
        if self._decoder is None:
            self._decoder = DecodeProcess(timeout_s=self.timeout_s, decoder=self.decoder_name)
        return self._decoder

    def _clip_args(self, clip_id: int, seed: list[int]) -> dict:
        return dict(
            clip_len=self.clip_len,
            sampling_rate=self.sampling_rate,
            mode=self.mode,
            num_clips=self.num_clips,
            short_policy=self.short_policy,
            clip_index=clip_id,
            seed=seed,
        )

    def _read(self, path: str, clip_id: int, seed: list[int]) -> tuple[np.ndarray | None, int]:
        if self.cache is not None:
            got = self._read_cached(path, clip_id, seed)
            if got is not None:
                return got
        reply = self.decoder().request(
            {"op": "clip", "path": path, "resize": self.resize, "clip": self._clip_args(clip_id, seed)}
        )
        if "short" in reply:
            return None, reply["short"]
        return reply["frames"], reply["num_frames"]

    def _read_cached(self, path: str, clip_id: int, seed: list[int]):
        """(frames, num_frames) from the frame cache, building the entry first if needed;
        None if the cache cannot be used (disk trouble), to fall back to direct decoding."""
        all_frames = self.cache.load(path)  # (N, H, W, 3) memmap
        if all_frames is None and isinstance(self.cache, FrameCache):  # a ShardStore is built up front
            reply = self.decoder().request(
                {"op": "cache", "path": path, "resize": self.resize, "cache_root": str(self.cache.root)},
                timeout_s=self.timeout_s * CACHE_BUILD_TIMEOUT_FACTOR,
            )
            if "cache_error" in reply and not self._cache_warned:
                self._cache_warned = True
                log.warning("frame cache unusable (%s); decoding directly", reply["cache_error"])
            all_frames = self.cache.load(path)
            if all_frames is None:
                return None
        indices = pick_clip(len(all_frames), **self._clip_args(clip_id, seed))
        if indices is None:
            return None, len(all_frames)
        return np.asarray(all_frames[indices]), len(all_frames)


def collate_clips(items: list[dict | Skipped]) -> dict:
    """Stack the good samples; failed ones go to batch['skipped'] (video is None if none is left).

    batch['video'] is (B, C, T, H, W) laid out as channels_last_3d (channels innermost, the frames'
    own order: `to_tensor` permutes (T, H, W, 3) without copying), so a channels-last model takes
    it as it is and a contiguous one converts it once, in the copy to its device
    (`Runtime.to_device`). In a DataLoader worker torch's default_collate stacks the clips
    straight into shared memory, and the labels and ids are numpy arrays (pickled with the batch) that `ClipLoader` turns into
    tensors: one shared tensor crosses to the main process per batch, not four."""
    good = [x for x in items if not isinstance(x, Skipped)]
    skipped = [x for x in items if isinstance(x, Skipped)]
    if not good:
        return {"video": None, "label": None, "video_id": None, "clip_id": None, "skipped": skipped}
    frames = default_collate([x["video"].permute(1, 2, 3, 0) for x in good])  # (B, T, H, W, C): a copy, no permute
    return {
        "video": frames.permute(0, 4, 1, 2, 3),  # (B, C, T, H, W), channels-last
        "label": np.array([x["label"] for x in good], dtype=np.int64),
        "video_id": np.array([x["video_id"] for x in good], dtype=np.int64),
        "clip_id": np.array([x["clip_id"] for x in good], dtype=np.int64),
        "skipped": skipped,
    }


def _seed_worker(worker_id: int, *, seed: int) -> None:
    """Seed every RNG a worker might touch (ours use explicit per-item generators anyway)."""
    worker_seed = (seed * 1_000_003 + worker_id) % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
    torch.manual_seed(worker_seed)


class _EpochSampler(Sampler):
    """Runs in the main process: yields (epoch, item, known_bad) so persistent workers learn the
    epoch (for the per-item seeds) and skip files already reported, without being restarted."""

    def __init__(self, dataset: ClipDataset):
        # no reference back to the ClipLoader: a reference cycle would leave the DataLoader's
        # shutdown to the garbage collector, which then waits 5 s per worker
        self.videos, self.per_video = dataset.index.videos, dataset.num_clips
        self.epoch, self.order, self.skip = 0, [], frozenset()

    def __iter__(self):
        for i in self.order:
            yield self.epoch, i, self.videos[i // self.per_video][0] in self.skip

    def __len__(self) -> int:
        return len(self.order)


def shard_order(order: list[int], *, per_video: int, rank: int, world_size: int, even: bool) -> list[int]:
    """Rank `rank`'s part of an epoch's item order when `world_size` processes share it (DDP).

    The order is cut into whole videos (item i belongs to video i // per_video), so the N eval
    clips of a video stay on one rank and its softmax average stays local; video k of the order
    goes to rank k % world_size. even=True (training) first drops the last len % world_size videos
    so that every rank takes the same number of steps, as DDP needs; the order is reshuffled every
    epoch, so a different ≤ world_size - 1 videos sit out each time. Items keep their order.
    """
    if world_size == 1:
        return list(order)
    videos = list(dict.fromkeys(i // per_video for i in order))  # in order of first appearance
    if even:
        videos = videos[: len(videos) - len(videos) % world_size]
    mine = set(videos[rank::world_size])
    return [i for i in order if i // per_video in mine]


SHOWN_UNUSABLE = 3  # files named in the error of a pass with no usable video


class ClipLoader:
    """Iterable of batches over a ClipDataset: one DataLoader with persistent workers (each keeps
    its decode child across epochs), an epoch-aware sampler, and the record of skipped samples.

    rank/world_size: this process reads only its shard of every epoch (`shard_order`; even shards
    when shuffling, i.e. training). batch_size is per process."""

    def __init__(
        self,
        dataset: ClipDataset,
        *,
        batch_size: int,
        num_workers: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        pin_memory: bool = False,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.dataset = dataset
        self.batch_size, self.num_workers = batch_size, num_workers
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.pin_memory = pin_memory  # page-locked batches, for non-blocking copies to a GPU
        self.epoch = 0  # the epoch the next iteration uses; advances by one per iteration
        self.bad_videos: dict[str, str] = {}  # path → decoder's reason
        self.short_videos: dict[str, int] = {}  # path → number of frames (dropped)
        self.skipped_samples = 0
        self.yielded_samples = 0
        self._sampler = _EpochSampler(dataset)
        self._loader: DataLoader | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def missing(self) -> tuple[str, ...]:
        """Listed in the annotations, not on disk (skipped under data.missing_videos: skip)."""
        return self.dataset.index.missing

    def __len__(self) -> int:
        n = len(self.order(0))  # shards of every epoch have the same size
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> list[int]:
        """The items this process reads in `epoch`, in reading order (its shard of the epoch)."""
        n = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        return shard_order(
            order, per_video=self.dataset.num_clips, rank=self.rank, world_size=self.world_size, even=self.shuffle
        )

    def __iter__(self) -> Iterator[dict]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        self._sampler.epoch, self._sampler.order = epoch, self.order(epoch)
        self._sampler.skip = frozenset(self.bad_videos) | frozenset(self.short_videos)
        if self._loader is None:
            workers = self.num_workers
            self._loader = DataLoader(
                self.dataset,
                batch_size=self.batch_size,
                sampler=self._sampler,
                num_workers=workers,
                collate_fn=collate_clips,
                drop_last=self.drop_last,
                worker_init_fn=_WorkerInit(self.seed) if workers else None,
                persistent_workers=workers > 0,
                prefetch_factor=2 if workers else None,
                pin_memory=self.pin_memory,
            )
        new_short = 0
        for batch in self._loader:
            new_short += self._record(batch.pop("skipped"))
            if batch["video"] is None:
                continue
            self.yielded_samples += len(batch["video"])
            for key in ("label", "video_id", "clip_id"):  # numpy from collate_clips
                batch[key] = torch.from_numpy(batch[key])
                if self.pin_memory:
                    batch[key] = batch[key].pin_memory()
            yield batch
        if new_short:
            log.warning(
                "dropped %d video(s) shorter than one clip (L=%d, s=%d → %d frames), e.g. %s",
                new_short,
                self.dataset.clip_len,
                self.dataset.sampling_rate,
                clip_span(self.dataset.clip_len, self.dataset.sampling_rate),
                next(iter(self.short_videos)),
            )

    def _record(self, skipped: list[Skipped]) -> int:
        new_short = 0
        for s in skipped:
            self.skipped_samples += 1
            if s.kind == "bad" and s.path not in self.bad_videos:
                self.bad_videos[s.path] = s.reason
                log.warning("skipping unusable video %s: %s", s.path, s.reason)
            elif s.kind == "short" and s.path not in self.short_videos:
                self.short_videos[s.path] = s.num_frames
                new_short += 1
        return new_short

    def why_empty(self, what: str) -> str:
        """The error of a pass that yielded no clip: how many of the subset's videos could not be
        used, the first few with their reasons, and the command that lists them all."""
        span = clip_span(self.dataset.clip_len, self.dataset.sampling_rate)
        problems = {
            **{p: f"bad: {reason}" for p, reason in self.bad_videos.items()},
            **{p: f"short: {n} frames, one clip needs {span}" for p, n in self.short_videos.items()},
        }
        index = self.dataset.index
        first = "; ".join(f"{p} ({why})" for p, why in sorted(problems.items())[:SHOWN_UNUSABLE])
        check = (
            f"starch data check {index.format} {index.root} --frames {self.dataset.clip_len} "
            f"--sampling-rate {self.dataset.sampling_rate}"
        )
        return (
            f"{what} yielded no clip: {len(problems)} of its {len(index)} videos are unusable "
            f"({len(self.bad_videos)} bad, {len(self.short_videos)} shorter than one clip"
            f"{f', {len(index.missing)} listed but missing' if index.missing else ''})"
            f"{f'; first: {first}' if first else ''}; list them all with `{check}`"
        )

    def stats(self) -> dict:
        """What the trainer reports: counts plus the file names (bad ones with the reason)."""
        return {
            "videos": len(self.dataset.index.videos),
            "clips_per_video": self.dataset.num_clips,
            "yielded_samples": self.yielded_samples,
            "skipped_samples": self.skipped_samples,
            "num_bad_videos": len(self.bad_videos),
            "bad_videos": dict(self.bad_videos),
            "num_short_videos": len(self.short_videos),
            "short_videos": dict(self.short_videos),
            "cache": str(self.dataset.cache.root) if self.dataset.cache is not None else None,
        }

    def close(self) -> None:
        """Stop the workers (their decode children exit with them) and our own decode child."""
        self._loader = None
        self.dataset.close()


class _WorkerInit:
    """Picklable worker_init_fn (a lambda would break the 'spawn' start method)."""

    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, worker_id: int) -> None:
        _seed_worker(worker_id, seed=self.seed)


def make_loader(
    spec: DataSpec,
    subset: str | None = None,
    *,
    seed: int = 0,
    eval_mode: Literal["video", "clip"] = "video",
    index: VideoIndex | None = None,
    cache_dir: str | os.PathLike | None = None,
    shuffle: bool | None = None,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> ClipLoader:
    """The loader of one subset (default spec.subset): train → one jittered, flipped random crop
    per video, shuffled; test → `eval_mode` 'video' (spec.eval_clips clips per video, for video@1)
    or 'clip' (the centre clip, clip@1), centre crops, in order. With world_size > 1 it reads only
    shard `rank` of each epoch (see `shard_order`). pin_memory: batches in page-locked memory (only
    where they go to a CUDA device)."""
    subset = subset or spec.subset
    index = index if index is not None else build_index(spec, subset)
    train = subset == "train"
    if eval_mode not in ("video", "clip"):
        raise ValueError(f"eval_mode must be 'video' or 'clip', got {eval_mode!r}")
    mode = "train" if train else ("video" if eval_mode == "video" else "centre")
    flip = index.flip_preserves_label if spec.hflip is None else spec.hflip
    if spec.hflip and not index.flip_preserves_label:
        log.warning("hflip=True although %s declares flip_preserves_label=false", index.root)
    resize = spec.resize_hw()
    dataset = ClipDataset(
        index,
        mode=mode,
        clip_len=spec.clip_len,
        sampling_rate=spec.sampling_rate,
        num_clips=spec.eval_clips,
        short_policy=spec.short_video,
        resize=resize,
        transform=ClipTransform(crop=spec.crop, train=train, flip=flip),
        decoder=spec.decoder,
        timeout_s=spec.sample_timeout_s,
        cache=_resolve_cache(spec, index, resize, cache_dir),
        seed=seed,
    )
    return ClipLoader(
        dataset,
        batch_size=spec.batch_size,
        num_workers=spec.num_workers,
        shuffle=train if shuffle is None else shuffle,
        seed=seed,
        rank=rank,
        world_size=world_size,
        pin_memory=pin_memory,
    )


def estimate_decoded_bytes(
    index: VideoIndex,
    resize: tuple[int, int] | None,
    *,
    probes: int = AUTO_CACHE_PROBES,
    timeout_s: float = 30.0,
    decoder: str = DEFAULT_DECODER,
) -> int | None:
    """Decoded size of the whole subset, from `probes` evenly chosen videos (probed in a decode
    child); None if none of them could be read."""
    picks = sorted({round(i) for i in np.linspace(0, len(index.videos) - 1, min(probes, len(index.videos)))})
    process, per_video = DecodeProcess(timeout_s=timeout_s, decoder=decoder), []
    try:
        for i in picks:
            try:
                info = process.request({"op": "check", "path": index.videos[i][0], "resize": resize})
            except VideoDecodeError:
                continue
            per_video.append(info["num_frames"] * info["height"] * info["width"] * 3)
    finally:
        process.close()
    return int(np.mean(per_video) * len(index.videos)) if per_video else None


def _resolve_cache(spec: DataSpec, index: VideoIndex, resize, cache_dir):
    if spec.cache == "shards":  # trainers.data.shards: built (or its build joined) here, before any worker starts
        from trainers.data.shards import open_store

        timeout = spec.sample_timeout_s * CACHE_BUILD_TIMEOUT_FACTOR
        return open_store(index, resize=resize, root=spec.shard_dir, decode_timeout_s=timeout, decoder=spec.decoder)
    if spec.cache is False:
        return None
    cache = FrameCache(cache_dir, resize=resize, decoder=spec.decoder)
    if spec.cache is True:
        return cache
    estimate = estimate_decoded_bytes(index, resize, timeout_s=spec.sample_timeout_s, decoder=spec.decoder)
    if estimate is None:
        return None
    use, why = should_cache(estimate, cache.root)
    hint = "" if use else " (data.cache: shards stores frames of any size on disk)"
    log.info("frame cache %s for %s/%s: %s%s", "on" if use else "off", index.format, index.subset, why, hint)
    return cache if use else None
