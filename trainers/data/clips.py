"""Which frames make a clip: pure functions of (num_frames, clip_len, sampling_rate, mode, rng).

A clip is `clip_len` (L) frames taken every `sampling_rate` (s) frames, so it spans
`(L - 1) * s + 1` source frames. Three modes, as in the papers' protocol (Res3D §3, C3D §3):

    train   one clip at a random start (temporal jitter)           → 1 clip
    video   `num_clips` evenly spaced clips (default 10, video@1)  → N clips, softmax averaged
    centre  the one clip in the middle of the video (clip@1)       → 1 clip

A video shorter than the span follows `short_policy`:

    drop    no clip at all (Res3D drops them); callers count and report the video
    loop    frame indices wrap around (start + i*s) mod num_frames

Nothing here raises on a video's length: a video with 0 frames, or a short one under `drop`,
gives an empty list. Arguments that are wrong for every video (L < 1, …) raise ValueError at once.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Mode = Literal["train", "video", "centre"]
ShortPolicy = Literal["drop", "loop"]
MODES: tuple[str, ...] = ("train", "video", "centre")
SHORT_POLICIES: tuple[str, ...] = ("drop", "loop")


def clip_span(clip_len: int, sampling_rate: int) -> int:
    """Number of source frames one clip covers, first to last frame inclusive."""
    return (clip_len - 1) * sampling_rate + 1


def is_short(num_frames: int, *, clip_len: int, sampling_rate: int) -> bool:
    """True if no clip fits inside the video without wrapping."""
    return num_frames < clip_span(clip_len, sampling_rate)


def clip_indices(start: int, *, num_frames: int, clip_len: int, sampling_rate: int) -> np.ndarray:
    """Frame indices of the clip starting at `start`, wrapped modulo num_frames (the loop policy;
    for a clip that fits, wrapping changes nothing)."""
    return (start + sampling_rate * np.arange(clip_len, dtype=np.int64)) % num_frames


def sample_clips(
    num_frames: int,
    *,
    clip_len: int,
    sampling_rate: int,
    mode: Mode,
    num_clips: int = 10,
    short_policy: ShortPolicy = "drop",
    rng: np.random.Generator | None = None,
) -> list[np.ndarray]:
    """Frame indices of the clips of one video: a list of int64 arrays of shape (clip_len,).

    Empty list = the video gives no clip (0 frames, or short under `drop`). `rng` is required in
    `train` mode (the temporal jitter) and unused otherwise, so eval is deterministic.
    """
    _check(clip_len=clip_len, sampling_rate=sampling_rate, mode=mode, num_clips=num_clips, short_policy=short_policy)
    if num_frames <= 0:
        return []
    short = is_short(num_frames, clip_len=clip_len, sampling_rate=sampling_rate)
    if short and short_policy == "drop":
        return []
    # Last start that keeps the clip inside the video; a short, looped video may start anywhere.
    last_start = num_frames - 1 if short else num_frames - clip_span(clip_len, sampling_rate)
    if mode == "train":
        if rng is None:
            raise ValueError("sample_clips: mode 'train' needs an rng for the temporal jitter")
        starts = [int(rng.integers(0, last_start + 1))]
    elif mode == "centre" or num_clips == 1:  # one "evenly spaced" clip is the centre clip
        starts = [last_start // 2]
    else:  # video: evenly spaced starts, the first at 0 and the last at last_start
        starts = np.linspace(0, last_start, num_clips).round().astype(int).tolist()
    return [clip_indices(s, num_frames=num_frames, clip_len=clip_len, sampling_rate=sampling_rate) for s in starts]


def clips_per_video(mode: Mode, num_clips: int = 10) -> int:
    """How many clips `sample_clips` returns for a video that is long enough."""
    return num_clips if mode == "video" else 1


def _check(*, clip_len: int, sampling_rate: int, mode: str, num_clips: int, short_policy: str) -> None:
    if not isinstance(clip_len, (int, np.integer)) or clip_len < 1:
        raise ValueError(f"clip_len must be an int >= 1, got {clip_len!r}")
    if not isinstance(sampling_rate, (int, np.integer)) or sampling_rate < 1:
        raise ValueError(f"sampling_rate must be an int >= 1, got {sampling_rate!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(num_clips, (int, np.integer)) or num_clips < 1:
        raise ValueError(f"num_clips must be an int >= 1, got {num_clips!r}")
    if short_policy not in SHORT_POLICIES:
        raise ValueError(f"short_policy must be one of {SHORT_POLICIES}, got {short_policy!r}")


def pick_clip(
    num_frames: int,
    *,
    clip_len: int,
    sampling_rate: int,
    mode: Mode,
    num_clips: int = 10,
    short_policy: ShortPolicy = "drop",
    clip_index: int = 0,
    seed: int | list[int] = 0,
) -> np.ndarray | None:
    """The one clip a dataset item needs: clip `clip_index` of `sample_clips`, with the train jitter
    drawn from `np.random.default_rng(seed)`; None if the video gives no clip. Pure, so the same
    (seed, item) gives the same frames in any process, which is what makes epochs reproducible."""
    clips = sample_clips(
        num_frames,
        clip_len=clip_len,
        sampling_rate=sampling_rate,
        mode=mode,
        num_clips=num_clips,
        short_policy=short_policy,
        rng=np.random.default_rng(seed) if mode == "train" else None,
    )
    return clips[clip_index] if clip_index < len(clips) else None
