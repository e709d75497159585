"""The clip sampler as pure functions: every clip is in range, spaced by s, and modes behave."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainers.data.clips import clip_span, is_short, pick_clip, sample_clips

lengths = st.integers(1, 40)
rates = st.integers(1, 5)
frames = st.integers(0, 400)


def test_span_counts_first_to_last_frame():
    assert clip_span(16, 1) == 16
    assert clip_span(8, 2) == 15
    assert is_short(14, clip_len=8, sampling_rate=2) and not is_short(15, clip_len=8, sampling_rate=2)


@settings(max_examples=200, deadline=None)
@given(n=frames, L=lengths, s=rates, seed=st.integers(0, 2**31), policy=st.sampled_from(["drop", "loop"]))
def test_train_clip_in_range_and_strided(n, L, s, seed, policy):
    clips = sample_clips(
        n, clip_len=L, sampling_rate=s, mode="train", short_policy=policy, rng=np.random.default_rng(seed)
    )
    if n == 0 or (policy == "drop" and n < clip_span(L, s)):
        assert clips == []
        return
    (clip,) = clips
    assert clip.shape == (L,) and clip.dtype == np.int64
    assert clip.min() >= 0 and clip.max() < n
    if n >= clip_span(L, s):  # fits: strictly increasing by s, no wrap
        assert np.all(np.diff(clip) == s)
    else:  # looped: consecutive indices differ by s modulo n
        assert np.all((clip[1:] - clip[:-1]) % n == s % n)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 400), L=lengths, s=rates, k=st.integers(1, 12))
def test_video_mode_evenly_spaced_and_deterministic(n, L, s, k):
    clips = sample_clips(n, clip_len=L, sampling_rate=s, mode="video", num_clips=k, short_policy="loop")
    assert len(clips) == k
    starts = [int(c[0]) for c in clips]
    assert starts == sorted(starts)
    if k == 1:
        centre = pick_clip(n, clip_len=L, sampling_rate=s, mode="centre", short_policy="loop")
        assert np.array_equal(clips[0], centre)
        return
    assert starts[0] == 0
    if n >= clip_span(L, s):
        assert starts[-1] == n - clip_span(L, s)  # last clip ends on the last frame
        gaps = np.diff(starts)
        assert len(gaps) == 0 or gaps.max() - gaps.min() <= 1  # evenly spaced (rounding)
    again = sample_clips(n, clip_len=L, sampling_rate=s, mode="video", num_clips=k, short_policy="loop")
    assert all(np.array_equal(a, b) for a, b in zip(clips, again))


def test_centre_clip_is_in_the_middle():
    (clip,) = sample_clips(100, clip_len=16, sampling_rate=2, mode="centre")
    assert clip[0] == (100 - 31) // 2 == 34 and clip[-1] == 64


def test_train_jitter_covers_all_starts_and_is_seeded():
    starts = {int(pick_clip(20, clip_len=4, sampling_rate=2, mode="train", seed=[0, 0, i])[0]) for i in range(400)}
    assert starts == set(range(20 - 7 + 1))
    a = pick_clip(300, clip_len=8, sampling_rate=2, mode="train", seed=[3, 1, 7])
    b = pick_clip(300, clip_len=8, sampling_rate=2, mode="train", seed=[3, 1, 7])
    c = pick_clip(300, clip_len=8, sampling_rate=2, mode="train", seed=[3, 2, 7])
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_short_video_policies():
    assert sample_clips(5, clip_len=8, sampling_rate=1, mode="train", rng=np.random.default_rng(0)) == []
    assert pick_clip(5, clip_len=8, sampling_rate=1, mode="centre") is None
    (looped,) = sample_clips(5, clip_len=8, sampling_rate=1, mode="centre", short_policy="loop")
    assert looped.tolist() == [2, 3, 4, 0, 1, 2, 3, 4]
    assert sample_clips(0, clip_len=1, sampling_rate=1, mode="centre", short_policy="loop") == []


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(clip_len=0), "clip_len"),
        (dict(sampling_rate=0), "sampling_rate"),
        (dict(mode="random"), "mode"),
        (dict(short_policy="pad"), "short_policy"),
        (dict(num_clips=0), "num_clips"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, word):
    args = dict(clip_len=8, sampling_rate=1, mode="centre") | kwargs
    with pytest.raises(ValueError, match=word):
        sample_clips(50, **args)
