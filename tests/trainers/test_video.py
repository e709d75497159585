"""The decord reader returns exactly the requested frames; every broken file is a VideoDecodeError
with a reason; the decode child survives aborts and hangs."""

import time

import numpy as np
import pytest

from tests.videos import decoded_index, write_random_bytes, write_truncated, write_video, write_zero_bytes
from trainers.data.video import DecodeProcess, VideoDecodeError, VideoReader, probe, read_frames


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("video")
    return {
        "mp4": write_video(d / "a.mp4", frames=40, size=(32, 44), fps=25),
        "avi": write_video(d / "a.avi", frames=30, size=(32, 44), fps=15),
    }


@pytest.mark.parametrize("kind, n, fps", [("mp4", 40, 25.0), ("avi", 30, 15.0)])
def test_reads_exactly_the_requested_frames(good, kind, n, fps):
    wanted = [0, 5, 7, 21, n - 1]
    frames = read_frames(good[kind], wanted)
    assert frames.dtype == np.uint8 and frames.shape == (5, 32, 44, 3)
    assert [decoded_index(f) for f in frames] == wanted
    assert probe(good[kind]) == (n, fps, 32, 44)


def test_resize_and_repeated_clips_from_one_reader(good):
    with VideoReader(good["mp4"], resize=(64, 86)) as reader:
        for start in (30, 0, 12):  # backwards seeks too
            frames = reader.get_frames(range(start, start + 8, 2))
            assert frames.shape == (4, 64, 86, 3)
            assert [decoded_index(f) for f in frames] == list(range(start, start + 8, 2))


def test_out_of_range_index_is_a_decode_error(good):
    with pytest.raises(VideoDecodeError, match="frame index 40 outside 0..39"):
        read_frames(good["mp4"], [0, 40])


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: write_zero_bytes(p / "z.mp4"), "empty file"),
        (lambda p: write_random_bytes(p / "r.avi"), "Invalid data"),
        (lambda p: write_truncated(p / "t.mp4"), ""),
        (lambda p: write_truncated(p / "t.avi"), ""),
        (lambda p: p / "missing.mp4", "no such file"),
    ],
)
def test_broken_files_raise_with_path_and_reason(tmp_path, make, reason):
    path = make(tmp_path)
    decoder = DecodeProcess(timeout_s=10)
    try:
        with pytest.raises(VideoDecodeError) as err:
            decoder.request({"op": "check", "path": str(path), "resize": None})
    finally:
        decoder.close()
    assert err.value.path == str(path) and err.value.reason
    assert reason in err.value.reason


def test_decode_child_survives_abort_and_hang(good, monkeypatch, tmp_path):
    crash = write_video(tmp_path / "crash_me.mp4", frames=10)
    stuck = write_video(tmp_path / "stuck.mp4", frames=10)
    monkeypatch.setenv("STARCH_DECODE_FAULT", "abort:crash_me,hang:stuck")
    decoder = DecodeProcess(timeout_s=1.5)
    clip = dict(clip_len=4, sampling_rate=1, mode="centre", num_clips=1, short_policy="drop", clip_index=0, seed=0)
    try:
        first_pid = decoder.request({"op": "ping"})["pid"]
        with pytest.raises(VideoDecodeError, match="decoder process died .*SIGABRT"):
            decoder.request({"op": "clip", "path": str(crash), "resize": None, "clip": clip})
        t0 = time.monotonic()
        with pytest.raises(VideoDecodeError, match="timed out after 1.5 s"):
            decoder.request({"op": "clip", "path": str(stuck), "resize": None, "clip": clip})
        assert time.monotonic() - t0 < 5
        reply = decoder.request({"op": "clip", "path": str(good["mp4"]), "resize": None, "clip": clip})
        assert [decoded_index(f) for f in reply["frames"]] == [18, 19, 20, 21]
        assert decoder.restarts == 2 and decoder.pid != first_pid
    finally:
        decoder.close()
