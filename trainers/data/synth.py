"""Synthetic motion benchmark: the embedded default dataset, written as real H.264 mp4 files.

Every class is a *motion*: a direction (left, right, up, down) times a speed profile (`DownFaster`,
`LeftSlower`, ...: PROFILES). With 8 classes the profiles are speeding up and slowing down, the same
speeds in the other order, so a network must see the order of a clip's frames, not only that
something moves one way. Everything that a single frame shows is drawn independently of the class,
so a per-frame 2D network stays at chance at every level.

One video (`generate_video`), drawn from a per-video random generator::

    background (static)                          moving sprites (wrap at the frame edges)
    ├─ colour gradient between two colours       └─ 24 textured sprites, 4-8 px, each moving by
    ├─ ~20 flat rectangles                          displacement(profile, gap)[t] * direction:
    └─ 1 look-alike sprite (same textures,          a share (the coherence) with the class's
      never moving)                                 motion, the others like random classes'
    + grey pixel noise, fresh in every frame

The video's coherence and speed gap are drawn in the ranges of its difficulty level (LEVELS,
`--level`): easy and hard videos in every level, and at gap 0 faster and slower are the same motion.

Sprite textures (checker, stripes, binary noise) alternate a dark and a bright colour, so they live
in luminance: x264's yuv420p halves the colour resolution but keeps the luma, and the motion stays
visible at 32x44. Counts scale with the frame area and sprite sizes with min(H, W) / 32.

The dataset on disk (`write_synthetic_dataset`) has the UCF101 layout, so the reader for real data
reads it unchanged::

    out/UCF-101/LeftFaster/v_LeftFaster_g08_c01.mp4  class folder, group gXX, clip cYY
    out/ucfTrainTestlist/classInd.txt                "1 DownFaster" ... (alphabetical, like UCF101)
    out/ucfTrainTestlist/trainlist01.txt             "LeftFaster/v_LeftFaster_g08_c01.mp4 3"
    out/ucfTrainTestlist/testlist01.txt              "LeftFaster/v_LeftFaster_g01_c01.mp4"
    out/starch_dataset.json                          written last: its presence means complete

As in UCF101 split 1, the first groups (g01...) are the test set and the later ones the train set;
the test set holds videos_per_class * test_fraction videos of every class (rounded; at least one,
and at least one left for training).

Measured: on VERSION 2 (one coherent layer, 4 directions x 2 constant speeds) every temporal network
reached 100 % and the benchmark ranked nothing but 2D against 3D; VERSION 3's experiments (moving
distractors delay learning past the demo's 900 updates; level 1 takes off by epoch 6) are in
docs/benchmark/README.md.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_LEVEL",
    "DIRECTIONS",
    "LEVELS",
    "METADATA_FILE",
    "PROFILES",
    "VALID_CLASSES",
    "Level",
    "class_motions",
    "class_names",
    "describe_levels",
    "displacement",
    "draw_motions",
    "encode_mp4",
    "generate_video",
    "write_synthetic_dataset",
]

NAME = "starch-synthetic-motion"
LABEL = "synthetic-motion"
VERSION = 3  # bump when the frames or the encoding change: old caches then refuse to be reused
# 2: a dense moving layer (24 sprites, 1 static look-alike, 20 rectangles): learning starts early
#    in every seed instead of "late and all at once" (issue 10)
# 3: classes are direction x speed *profile* (speeding up, slowing down, ...), every sprite moves on
#    its own, a per-video share of them (the coherence) carries the class and the others move like
#    other classes; each video draws its own speed gap (0: faster and slower look the same); `level`
#    sets the ranges of both (issue 22: on V2 every temporal network reached the ceiling)
METADATA_FILE = "starch_dataset.json"
_PARTIAL_FILE = ".starch_dataset.partial"  # exists while a write is under way (or was killed)

# direction -> unit displacement (dx, dy) in image coordinates (y grows downwards)
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}
# How the speed along the direction changes over the video, u = t / (T - 1) in [0, 1], around
# MEAN_SPEED px/frame with the video's speed gap g (drawn per video in the level's range). Used in
# this order for 4, 8, 12 and 16 classes: 8 classes ask for the order of two speeds within a clip
# (faster vs slower: the same speeds, the other order; at g = 0 they are the same motion).
#   faster   MEAN - g/2 -> MEAN + g/2 linearly      slower   MEAN + g/2 -> MEAN - g/2 linearly
#   steady   MEAN throughout                        pulsing  MEAN +- g/2, a sine of period 8 frames
PROFILES: tuple[str, ...] = ("faster", "slower", "steady", "pulsing")
MEAN_SPEED = 2.0  # px/frame: 4 px between the frames of a clip at the demo's sampling rate 2
# the time scale of faster and slower: None, one ramp over the whole video; N, a ramp every N frames
# (the speed jumps back at the end of each), so a clip of about N frames sees the whole change
_RAMP_FRAMES: int | None = None
PULSE_PERIOD = 8  # frames: 4 sampled frames per period at the demo's sampling rate 2
VALID_CLASSES: tuple[int, ...] = tuple(4 * n for n in range(1, len(PROFILES) + 1))


@dataclass(frozen=True)
class Level:
    """What a difficulty level sets (LEVELS): two per-video ranges, each step of the knob changes one.
    Both are drawn per video, uniformly, so every level mixes easy and hard videos: accuracy grows
    by degrees rather than all at once, and the hardest videos of a level stay ambiguous."""

    coherence: tuple[float, float]  # share of the moving sprites that carry the class motion; the
    #                                 others move like a class drawn at random
    gap: tuple[float, float]  # px/frame between the slow and the fast end of a profile: the smaller,
    #                           the subtler the difference between speeding up and slowing down

    def to_dict(self) -> dict[str, list[float]]:
        return {"coherence": list(self.coherence), "gap": list(self.gap)}


# 1 -> 2 lowers the coherence, 2 -> 3 narrows the gaps, 3 -> 4 lowers the coherence again.
LEVELS: dict[int, Level] = {
    1: Level(coherence=(1.0, 1.0), gap=(0.0, 3.0)),
    2: Level(coherence=(0.6, 1.0), gap=(0.0, 3.0)),
    3: Level(coherence=(0.6, 1.0), gap=(0.0, 2.0)),
    4: Level(coherence=(0.3, 1.0), gap=(0.0, 2.0)),
}
DEFAULT_LEVEL = (
    1  # the demo's (search.demo.DEMO_DATA): the one level where a network learnt by epoch 6 (docs/benchmark)
)


def describe_levels() -> list[str]:
    """One line per level: what it sets (for `starch data synth --help` and the docs)."""
    return [
        f"{n}: {lv.coherence[0]:.0%}-{lv.coherence[1]:.0%} of the moving sprites carry the class motion, "
        f"speed gap {lv.gap[0]:g}-{lv.gap[1]:g} px/frame around {MEAN_SPEED:g}"
        + (" (default)" if n == DEFAULT_LEVEL else "")
        for n, lv in LEVELS.items()
    ]


# H.264 settings. CRF 16 (without mbtree) keeps luma PSNR near 31 dB at 32x44, ~19 kB per
# 48-frame video; tests/trainers/test_synth.py recovers the motion from the decoded files.
FPS = 25
CODEC = "libx264"
PIX_FMT = "yuv420p"
CRF = 16
PRESET = "medium"
# mbtree off: with it, this x264 (core 165, PyAV 18 wheels) reads an uninitialised stack value in
# its lookahead (valgrind memcheck) and the same frames encode to different bytes from run to run
X264_PARAMS = "mbtree=0"

# content at the reference size 32x44 (the measured recipe); scaled for other sizes.
# The moving layer's salience decides whether training is reliable: with 8 moving sprites among 12
# static look-alikes and 40 rectangles (VERSION 1) whether R(2+1)D and MC3 learnt within 900 updates
# depended on the seed (R(2+1)D 60.0 / 16.5 %, MC3 93.2 / 16.5 % for seeds 0 / 1); fewer distractors
# alone (12 moving, 1 look-alike, 20 rectangles) fixed MC3 seed 1 (99.2 %) but not R(2+1)D (14.8 %);
# 24 moving sprites over 20 rectangles took R(2+1)D seed 1 to 100.0 %, learning from epoch 3.
# A single frame still holds no class: the draws do not depend on the class.
_REF_AREA = 32 * 44
_N_MOVING = 24
_N_STATIC_SPRITES = 1  # static look-alikes (same textures, never moving); count() keeps >= 1 anyway
_N_RECTS = 20
_SPRITE_SIDE = (4, 8)  # inclusive, px at min(H, W) = 32
_RECT_SIDE = (2, 12)
_NOISE_AMPLITUDE = 8  # grey noise, uniform in [-a, a], fresh per frame


# --------------------------------------------------------------------------- classes


def _profiles_for(classes: int) -> tuple[str, ...]:
    return PROFILES[: classes // len(DIRECTIONS)]


def class_motions(classes: int = 8) -> dict[str, tuple[str, str]]:
    """Class name -> (direction, profile), in classInd order (alphabetical, like UCF101)."""
    _check_classes(classes)
    motions = {
        f"{direction.capitalize()}{profile.capitalize()}": (direction, profile)
        for direction in DIRECTIONS
        for profile in _profiles_for(classes)
    }
    return dict(sorted(motions.items()))


def class_names(classes: int = 8) -> list[str]:
    """The class names, in classInd order: e.g. `DownFaster, DownSlower, LeftFaster, ...`."""
    return list(class_motions(classes))


def _level(level: int | Level) -> Level:
    if isinstance(level, Level):
        return level
    if not _is_int(level) or level not in LEVELS:
        raise ValueError(f"level must be one of {sorted(LEVELS)} (1 easiest), got {level!r}")
    return LEVELS[int(level)]


def displacement(profile: str, gap: float, frames: int) -> np.ndarray:
    """(frames,) int: px travelled along the direction from frame 0 to frame t (rounded), with the
    speed gap `gap` px/frame (PROFILES)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    lo, hi = MEAN_SPEED - gap / 2, MEAN_SPEED + gap / 2
    t = np.arange(frames, dtype=np.float64)
    u = t / max(1, frames - 1) if not _RAMP_FRAMES else (t % _RAMP_FRAMES) / max(1, _RAMP_FRAMES - 1)
    speed = {
        "faster": lo + (hi - lo) * u,
        "slower": hi - (hi - lo) * u,
        "steady": np.full(frames, (lo + hi) / 2),
        "pulsing": (lo + hi) / 2 + (hi - lo) / 2 * np.sin(2 * np.pi * t / PULSE_PERIOD),
    }[profile]
    # the speed between frames t and t+1 is the speed at t + 1/2 (the trapezoid of the two)
    steps = (speed[:-1] + speed[1:]) / 2
    return np.rint(np.concatenate([[0.0], np.cumsum(steps)])).astype(np.int64)


def draw_motions(
    rng: np.random.Generator, *, motion: tuple[str, str], level: int | Level, count: int, classes: int = 8
) -> tuple[list[tuple[str, str]], int]:
    """Each moving sprite's (direction, profile) and how many carry `motion` (the class's).

    The coherence c is drawn uniform in the level's range; round(c * count) sprites, chosen at
    random, move like the class, every other one like a class of `classes` drawn at random (the
    class's own included). The draws do not depend on `motion`."""
    lo, hi = _level(level).coherence
    coherence = rng.uniform(lo, hi)
    others = list(class_motions(classes).values())
    drawn = [others[int(i)] for i in rng.integers(0, len(others), size=count)]
    signal = int(round(coherence * count))
    carriers = rng.permutation(count)[:signal]
    for i in carriers:
        drawn[int(i)] = motion
    return drawn, signal


# --------------------------------------------------------------------------- frames


def _texture(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """A binary (h, w) pattern: checker, stripes (horizontal, vertical, diagonal) or noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    kind = rng.integers(0, 5)
    cell = max(1, round(int(rng.integers(1, 3)) * scale))  # 1 or 2 px at the reference size
    if kind == 0:  # checker
        return ((yy // cell + xx // cell) % 2).astype(bool)
    if kind == 1:  # horizontal stripes
        return ((yy // cell) % 2).astype(bool)
    if kind == 2:  # vertical stripes
        return ((xx // cell) % 2).astype(bool)
    if kind == 3:  # diagonal stripes
        return (((xx + yy) // cell) % 2).astype(bool)
    return rng.random((h, w)) < 0.5  # binary noise


def _sprite(rng: np.random.Generator, scale: float) -> np.ndarray:
    """One textured sprite, (h, w, 3) float: a dark and a bright colour, so it lives in luma."""
    lo, hi = (max(2, round(s * scale)) for s in _SPRITE_SIDE)
    h, w = (int(v) for v in rng.integers(lo, hi + 1, size=2))
    pattern = _texture(rng, h, w, scale)
    dark = rng.uniform(0, 90, size=3)
    bright = rng.uniform(165, 255, size=3)
    if rng.random() < 0.5:
        dark, bright = bright, dark
    return np.where(pattern[..., None], bright, dark)


def _paste(canvas: np.ndarray, mask: np.ndarray | None, patch: np.ndarray, y: int, x: int) -> None:
    """Paste `patch` at (y, x) on the torus: it wraps at the edges of `canvas`."""
    height, width = canvas.shape[:2]
    rows = (y + np.arange(patch.shape[0])) % height
    cols = (x + np.arange(patch.shape[1])) % width
    canvas[np.ix_(rows, cols)] = patch
    if mask is not None:
        mask[np.ix_(rows, cols)] = True


def generate_video(
    rng: np.random.Generator,
    *,
    direction: str,
    profile: str,
    level: int | Level = DEFAULT_LEVEL,
    classes: int = 8,
    frames: int = 48,
    size: tuple[int, int] = (32, 44),
) -> np.ndarray:
    """Draw one synthetic motion video: uint8 array (T, H, W, 3), RGB.

    The class is (direction, profile); `classes` names the class set whose motions the distractor
    sprites take (draw_motions). The random draws do not depend on the class (they are consumed in
    the same order for every class), so two calls with equally seeded generators give the same
    first frame for every class, and frame t of any class is the same sprites at uniformly random
    places: a single frame carries no class information. Sprite i is at its start position plus
    displacement(profile_i, gap, frames)[t] * DIRECTIONS[direction_i] in frame t (one gap per video,
    drawn in the level's range), wrapping at the edges; sprites drawn later pass in front.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    _check_frames(frames)
    height, width = _check_size(size, minimum=8)
    level = _level(level)
    scale = min(height, width) / 32
    area = height * width / _REF_AREA

    def count(n: int) -> int:
        return max(1, round(n * area))

    # background: gradient between two random colours along a random direction
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / width + np.sin(angle) * yy / height
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    c0, c1 = rng.uniform(0, 255, size=(2, 3))
    background = c0 + ramp[..., None] * (c1 - c0)

    # flat rectangles (sides scale with the frame; they may wrap like everything else)
    r_lo, r_hi = (max(1, round(s * scale)) for s in _RECT_SIDE)
    for _ in range(count(_N_RECTS)):
        h, w = (int(v) for v in rng.integers(r_lo, r_hi + 1, size=2))
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        colour = rng.uniform(0, 255, size=3)
        _paste(background, None, np.broadcast_to(colour, (h, w, 3)), y, x)

    # static look-alikes first, then the moving sprites: the same draws, so the same look
    for _ in range(count(_N_STATIC_SPRITES)):
        sprite = _sprite(rng, scale)
        _paste(background, None, sprite, int(rng.integers(0, height)), int(rng.integers(0, width)))
    n_moving = count(_N_MOVING)
    sprites = [_sprite(rng, scale) for _ in range(n_moving)]
    starts = [(int(rng.integers(0, height)), int(rng.integers(0, width))) for _ in range(n_moving)]
    gap = rng.uniform(*level.gap)
    motions, _ = draw_motions(rng, motion=(direction, profile), level=level, count=n_moving, classes=classes)
    travel = {p: displacement(p, gap, frames) for p in {p for _, p in motions}}

    noise = rng.integers(-_NOISE_AMPLITUDE, _NOISE_AMPLITUDE + 1, size=(frames, height, width, 1))

    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        frame = background.copy()
        for sprite, (y0, x0), (d, p) in zip(sprites, starts, motions):
            dx, dy = DIRECTIONS[d]
            step = int(travel[p][t])
            _paste(frame, None, sprite, y0 + dy * step, x0 + dx * step)
        out[t] = np.clip(np.rint(frame + noise[t]), 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------- encoding


def encode_mp4(frames: np.ndarray, path: str | os.PathLike, *, fps: int | None = None, crf: int | None = None) -> None:
    """Write (T, H, W, 3) uint8 RGB frames as an H.264 yuv420p mp4 with PyAV (H, W even).

    fps and crf default to the module's FPS and CRF. The same frames give the same bytes. The file
    appears atomically: it is written under a temporary name and renamed.
    """
    import av  # imported here: generating frames needs only numpy

    fps = FPS if fps is None else fps
    crf = CRF if crf is None else crf
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"frame size must be even for {PIX_FMT}, got {height}x{width}")
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.mp4")
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream(CODEC, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, PIX_FMT
            # one thread: we parallelise over videos
            stream.codec_context.thread_count = 1
            stream.codec_context.options = {
                "crf": str(crf),
                "preset": PRESET,
                "x264-params": X264_PARAMS,
            }
            stream.codec_context.time_base = Fraction(1, fps)
            for t, array in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
                # explicit timestamps, so the rate control sees a constant frame rate
                frame.pts, frame.time_base = t, Fraction(1, fps)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class _Job:
    path: str
    direction: str
    profile: str
    index: int  # video index within its class: part of the seed
    seed: int
    level: int
    classes: int  # the class set the distractors move like
    frames: int
    size: tuple[int, int]


def _video_rng(seed: int, direction: str, profile: str, index: int) -> np.random.Generator:
    # keyed by (direction, profile), not by the class index: a class's draws are the same whatever
    # the number of classes (its distractors' motions are drawn from that number's classes)
    return np.random.default_rng([seed, list(DIRECTIONS).index(direction), PROFILES.index(profile), index])


def _run_job(job: _Job) -> str:
    rng = _video_rng(job.seed, job.direction, job.profile, job.index)
    frames = generate_video(
        rng,
        direction=job.direction,
        profile=job.profile,
        level=job.level,
        classes=job.classes,
        frames=job.frames,
        size=job.size,
    )
    encode_mp4(frames, job.path)
    return job.path


def _n_test(videos_per_class: int, test_fraction: float) -> int:
    """Test videos per class: test_fraction rounded half up, at least 1, leaving at least 1 train."""
    return min(videos_per_class - 1, max(1, math.floor(videos_per_class * test_fraction + 0.5)))


def _split(videos_per_class: int, test_fraction: float) -> list[tuple[str, int, int]]:
    """(split, group, clip) for every video of one class, UCF101-style.

    Groups hold at most ceil(videos_per_class / 25) clips (UCF101 has 25 groups of 4-7 clips);
    test groups come first (g01...), then train groups, and no group is in both splits.
    """
    n_test = _n_test(videos_per_class, test_fraction)
    per_group = math.ceil(videos_per_class / 25)
    out: list[tuple[str, int, int]] = []
    group = 0
    for split, n in (("test", n_test), ("train", videos_per_class - n_test)):
        for i in range(n):
            if i % per_group == 0:
                group += 1
            out.append((split, group, i % per_group + 1))
    return out


def _layout(out: Path, params: dict[str, Any]) -> tuple[list[_Job], dict[str, list[str]], list[str]]:
    """The jobs, the split lines and the class names for `params` (nothing is written)."""
    motions = class_motions(params["classes"])
    names = list(motions)
    splits: dict[str, list[str]] = {"train": [], "test": []}
    jobs: list[_Job] = []
    for label, (name, (direction, profile)) in enumerate(motions.items(), start=1):
        for index, (split, group, clip) in enumerate(_split(params["videos_per_class"], params["test_fraction"])):
            rel = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.mp4"
            splits[split].append(f"{rel} {label}" if split == "train" else rel)
            jobs.append(
                _Job(
                    path=str(out / "UCF-101" / rel),
                    direction=direction,
                    profile=profile,
                    index=index,
                    seed=params["seed"],
                    level=params["level"],
                    classes=params["classes"],
                    frames=params["frames"],
                    size=tuple(params["size"]),
                )
            )
    return jobs, splits, names


def _is_complete(out: Path, jobs: list[_Job]) -> bool:
    lists = out / "ucfTrainTestlist"
    needed = [lists / n for n in ("classInd.txt", "trainlist01.txt", "testlist01.txt")]
    return all(p.is_file() for p in needed) and all(
        os.path.isfile(j.path) and os.path.getsize(j.path) > 0 for j in jobs
    )


def write_synthetic_dataset(
    out: str | os.PathLike,
    *,
    classes: int = 8,
    videos_per_class: int = 200,
    frames: int = 48,
    size: tuple[int, int] = (32, 44),
    seed: int = 0,
    level: int = DEFAULT_LEVEL,
    test_fraction: float = 0.25,
    workers: int = 2,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the synthetic motion dataset to `out` in the UCF101 layout; return its metadata.

    Command line: `starch data synth OUT [--classes 8] [--videos-per-class 200] [--frames 48]
    [--size 32x44] [--seed 0] [--level 2]`; then train on it as format `ucf101`, root OUT.

    classes           4, 8, 12 or 16: the four directions times the first classes/4 of PROFILES
                      (faster, slower, steady, pulsing); 8 gives DownFaster, DownSlower, ...
    videos_per_class  at least 2 (one test, one train); 200 is what the 2D-vs-3D gap needs
                      (with 50 every model memorises the backgrounds)
    frames            frames per video (25 fps)
    size              (H, W), both even (yuv420p), at least 16
    seed              the same seed gives the same frames
    level             1-4, the difficulty (LEVELS: the ranges of the share of sprites that carry
                      the class motion and of the gap between the slow and the fast speed)
    test_fraction     share of each class in testlist01 (whole groups, as in UCF101)
    workers           processes encoding in parallel; does not change the output
    overwrite         replace a dataset written here before with other parameters

    If `out` already holds a complete dataset with the same parameters it is returned as is. A
    dataset with other parameters raises ValueError unless `overwrite`; a folder holding a UCF101
    layout not written by this function is never touched. The metadata file is written last.
    """
    params = _check_params(
        classes=classes,
        videos_per_class=videos_per_class,
        frames=frames,
        size=size,
        seed=seed,
        level=level,
        test_fraction=test_fraction,
    )
    if not _is_int(workers) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    out = Path(out)
    meta_path = out / METADATA_FILE
    jobs, splits, names = _layout(out, params)
    metadata: dict[str, Any] = {
        "name": NAME,
        "label": LABEL,  # what reports call it (the layout it borrows is UCF101's)
        "flip_preserves_label": False,  # a horizontal flip turns Left into Right
        "classes": names,
        "params": params,
        "version": VERSION,
        "motion": {n: {"direction": d, "profile": p} for n, (d, p) in class_motions(classes).items()},
        "level": LEVELS[params["level"]].to_dict(),
        "videos": {"train": len(splits["train"]), "test": len(splits["test"])},
        "encoding": {
            "codec": CODEC,
            "pix_fmt": PIX_FMT,
            "crf": CRF,
            "preset": PRESET,
            "x264_params": X264_PARAMS,
            "fps": FPS,
        },
    }

    if meta_path.is_file():
        try:
            existing = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{meta_path} is unreadable ({exc}); delete it or pick another folder") from None
        if existing.get("name") != NAME:
            raise ValueError(
                f"{meta_path} describes {existing.get('name')!r}, not a dataset written by "
                "write_synthetic_dataset; pick an empty folder"
            )
        same = all(existing.get(k) == metadata[k] for k in ("version", "params", "level", "encoding"))
        if same and _is_complete(out, jobs):
            return existing
        # an older VERSION is a stale cache of the same parameters: rewritten, never reused
        outdated = existing.get("version") != VERSION
        if not same and not overwrite and not outdated:
            difference = _describe_difference(existing, params, metadata["encoding"])
            raise ValueError(
                f"{out} holds a synthetic dataset with other parameters ({difference}); "
                "pass overwrite=True to replace it or pick another folder"
            )
    elif not (out / _PARTIAL_FILE).exists() and any((out / d).exists() for d in ("UCF-101", "ucfTrainTestlist")):
        raise ValueError(
            f"{out} already holds a UCF-101 layout that was not written by write_synthetic_dataset; "
            "pick an empty folder"
        )

    # ours (complete, stale or interrupted) or nothing: rewrite from scratch
    out.mkdir(parents=True, exist_ok=True)
    (out / _PARTIAL_FILE).write_text(json.dumps(params) + "\n")
    meta_path.unlink(missing_ok=True)
    for d in ("UCF-101", "ucfTrainTestlist"):
        shutil.rmtree(out / d, ignore_errors=True)
    for name in names:
        (out / "UCF-101" / name).mkdir(parents=True)

    if workers == 1:
        for job in jobs:
            _run_job(job)
    else:
        # spawn: safe under threads (torch, Ray) where fork is not
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_run_job, jobs, chunksize=8):
                pass

    lists = out / "ucfTrainTestlist"
    lists.mkdir()
    _write_text(lists / "classInd.txt", [f"{i} {n}" for i, n in enumerate(names, start=1)])
    _write_text(lists / "trainlist01.txt", splits["train"])
    _write_text(lists / "testlist01.txt", splits["test"])
    _write_text(meta_path, [json.dumps(metadata, indent=2)])
    (out / _PARTIAL_FILE).unlink()
    return metadata


def _write_text(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def _describe_difference(existing: dict[str, Any], params: dict[str, Any], encoding: dict[str, Any]) -> str:
    if existing.get("version") != VERSION:
        return f"version {existing.get('version')!r}, not {VERSION}"
    old = existing.get("params") or {}
    diffs = [f"{k}={old.get(k)!r} vs {v!r}" for k, v in params.items() if old.get(k) != v]
    if existing.get("encoding") != encoding:
        diffs.append(f"encoding {existing.get('encoding')!r} vs {encoding!r}")
    return ", ".join(diffs) or "unknown difference"


# --------------------------------------------------------------------------- validation


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_classes(classes: Any) -> None:
    if not _is_int(classes) or classes not in VALID_CLASSES:
        raise ValueError(
            f"classes must be one of {list(VALID_CLASSES)} (4 directions x the first 1-{len(PROFILES)} "
            f"speed profiles of {list(PROFILES)}), got {classes!r}"
        )


def _check_frames(frames: Any) -> None:
    if not _is_int(frames) or frames < 2:
        raise ValueError(f"frames must be an integer >= 2 (motion needs two frames), got {frames!r}")


def _check_size(size: Any, *, minimum: int) -> tuple[int, int]:
    try:
        height, width = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W), got {size!r}") from None
    if not (_is_int(height) and _is_int(width)) or min(height, width) < minimum:
        raise ValueError(f"size must be two integers >= {minimum} (H, W), got {size!r}")
    return int(height), int(width)


def _check_params(**kw: Any) -> dict[str, Any]:
    """Validate the arguments that define the content; return them JSON-ready."""
    _check_classes(kw["classes"])
    vpc = kw["videos_per_class"]
    if not _is_int(vpc) or vpc < 2:
        raise ValueError(f"videos_per_class must be an integer >= 2 (one train, one test), got {vpc!r}")
    _check_frames(kw["frames"])
    height, width = _check_size(kw["size"], minimum=16)
    if height % 2 or width % 2:
        raise ValueError(f"size must be even in H and W for yuv420p H.264, got {kw['size']!r}")
    if not _is_int(kw["seed"]) or kw["seed"] < 0:
        raise ValueError(f"seed must be a non-negative integer, got {kw['seed']!r}")
    _level(kw["level"])
    tf = kw["test_fraction"]
    if not isinstance(tf, (int, float)) or isinstance(tf, bool) or not 0 < tf < 1:
        raise ValueError(f"test_fraction must be a number in (0, 1), got {tf!r}")
    return {
        "classes": int(kw["classes"]),
        "videos_per_class": int(vpc),
        "frames": int(kw["frames"]),
        "size": [height, width],
        "seed": int(kw["seed"]),
        "level": int(kw["level"]),
        "test_fraction": float(tf),
    }
