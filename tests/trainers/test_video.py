"""Every video backend returns exactly the requested frames; every broken file is a VideoDecodeError
with a reason, the same with each backend; the decode child survives aborts and hangs."""

import os
import time

import numpy as np
import pytest

from tests.decode_faults import CrashMeStuck, NoLibrary, server
from tests.videos import (
    DECODER_PARAMS,
    decoded_index,
    write_random_bytes,
    write_truncated,
    write_video,
    write_zero_bytes,
)
from trainers.data.datasets import DataSpec
from trainers.data.decode_process import DecodeProcess, DecoderUnavailable
from trainers.data.video import DECODERS, VideoDecodeError, check_decoder, open_video


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("video")
    return {
        "mp4": write_video(d / "a.mp4", frames=40, size=(32, 44), fps=25),
        "avi": write_video(d / "a.avi", frames=30, size=(32, 44), fps=15),
    }


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
@pytest.mark.parametrize("kind, n, fps", [("mp4", 40, 25.0), ("avi", 30, 15.0)])
def test_reads_exactly_the_requested_frames(good, kind, n, fps, decoder):
    wanted = [0, 5, 7, 21, n - 1, 3, 3]  # out of order and repeated, as loop-policy clips are
    with open_video(good[kind], decoder=decoder) as reader:
        frames = reader.get_frames(wanted)
        assert (reader.num_frames, reader.fps) == (n, fps)
    assert frames.dtype == np.uint8 and frames.shape == (7, 32, 44, 3)
    assert [decoded_index(f) for f in frames] == wanted


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
def test_resize_and_repeated_clips_from_one_reader(good, decoder):
    with open_video(good["mp4"], resize=(64, 86), decoder=decoder) as reader:
        for start in (30, 0, 12, 14):  # backwards seeks, and a clip right after the last one
            frames = reader.get_frames(range(start, start + 8, 2))
            assert frames.shape == (4, 64, 86, 3)
            assert [decoded_index(f) for f in frames] == list(range(start, start + 8, 2))


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
def test_out_of_range_index_is_a_decode_error(good, decoder):
    with open_video(good["mp4"], decoder=decoder) as reader:
        with pytest.raises(VideoDecodeError, match="frame index 40 outside 0..39"):
            reader.get_frames([0, 40])


def test_unknown_or_missing_decoder_is_a_clear_config_error(tmp_path, monkeypatch):
    with pytest.raises(
        ValueError, match=r"DataSpec: decoder: must be one of \['decord', 'torchcodec', 'pyav'\], got 'ffmpeg'"
    ):
        DataSpec(format="folder", root=str(tmp_path), decoder="ffmpeg")
    monkeypatch.setitem(DECODERS, "torchcodec", ("no_such_module_xyz", "pip install 'starch[torchcodec]'"))
    with pytest.raises(ValueError, match=r"'torchcodec' needs .*no_such_module_xyz.*starch\[torchcodec\]"):
        check_decoder("torchcodec")


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
@pytest.mark.parametrize("decoder_name", DECODER_PARAMS)
def test_broken_files_raise_with_path_and_reason(tmp_path, make, reason, decoder_name):
    path = make(tmp_path)
    decoder = DecodeProcess(timeout_s=10, decoder=decoder_name)
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
    decoder = DecodeProcess(timeout_s=1.5, server=server(CrashMeStuck))
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


@pytest.mark.parametrize("decoder_name", DECODER_PARAMS)
def test_too_few_frames_is_short_with_every_decoder(tmp_path, decoder_name):
    video = write_video(tmp_path / "three.mp4", frames=3)
    clip = dict(clip_len=4, sampling_rate=2, mode="train", num_clips=1, short_policy="drop", clip_index=0, seed=0)
    decoder = DecodeProcess(timeout_s=10, decoder=decoder_name)
    try:
        assert decoder.request({"op": "clip", "path": str(video), "resize": None, "clip": clip}) == {"short": 3}
        with pytest.raises(VideoDecodeError, match="short: 3 frames, one clip needs 7"):
            decoder.request({"op": "check", "path": str(video), "resize": None, "span": 7})
        looped = decoder.request(
            {"op": "clip", "path": str(video), "resize": None, "clip": {**clip, "short_policy": "loop"}}
        )
        assert looped["frames"].shape == (4, 32, 44, 3) and looped["num_frames"] == 3
    finally:
        decoder.close()


def test_a_decoder_that_does_not_load_is_a_setup_error_not_a_bad_video(good):
    decoder = DecodeProcess(timeout_s=10, decoder="torchcodec", server=server(NoLibrary))
    try:
        with pytest.raises(
            DecoderUnavailable, match=r"'torchcodec' does not load \(OSError: libavutil.*starch\[torchcodec\]"
        ):
            decoder.request({"op": "check", "path": str(good["mp4"]), "resize": None})
    finally:
        decoder.close()


def test_the_child_runs_this_copy_of_starch_from_any_working_directory(tmp_path, monkeypatch):
    """A Ray trial's cwd is its trial folder: the child must still import the parent's starch (not
    fail, nor pick up another install)."""
    import trainers.data.decode_process as parent

    monkeypatch.chdir(tmp_path)
    decoder = DecodeProcess(timeout_s=30)
    try:
        assert decoder.request({"op": "ping"})["module"] == os.path.abspath(parent.__file__)
    finally:
        decoder.close()
