"""The decoded-frame cache: same frames as decoding, invalidated by edits, safe under races, fast."""

import multiprocessing
import os
import time

import numpy as np
import pytest
import torch

from tests.videos import decoded_index, write_video
from trainers.data.cache import FrameCache, should_cache
from trainers.data.datasets import DataSpec
from trainers.data.loader import make_loader
from trainers.data.video import open_video


def test_entry_holds_every_frame_at_the_resize_resolution(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=40)
    cache = FrameCache(tmp_path / "cache", resize=(24, 32))
    assert cache.load(video) is None
    entry = cache.build(video)
    frames = cache.load(video)
    assert entry.parent.parent == tmp_path / "cache" and isinstance(frames, np.memmap)
    assert frames.shape == (40, 24, 32, 3) and [decoded_index(f) for f in frames] == list(range(40))
    with open_video(video, resize=(24, 32)) as reader:
        assert np.array_equal(frames[[3, 5, 7]], reader.get_frames([3, 5, 7]))
    assert not list(entry.parent.glob("*.tmp"))


def test_key_changes_with_video_resize_and_decoder(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=12)
    cache = FrameCache(tmp_path / "c", resize=(24, 32))
    first = cache.build(video)
    assert FrameCache(tmp_path / "c", resize=(32, 44)).entry_path(video) != first
    assert FrameCache(tmp_path / "c", resize=None).entry_path(video) != first
    assert FrameCache(tmp_path / "c", resize=(24, 32), decoder="pyav").entry_path(video) != first
    write_video(video, frames=20)  # the file changes (size and mtime)
    os.utime(video, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert cache.load(video) is None
    cache.build(video)
    assert cache.load(video).shape[0] == 20


def _build(args):
    root, video = args
    return str(FrameCache(root, resize=(24, 32)).build(video))


def test_concurrent_builders_agree(tmp_path):
    videos = [write_video(tmp_path / f"v{i}.mp4", frames=30) for i in range(3)]
    jobs = [(str(tmp_path / "c"), str(v)) for v in videos for _ in range(4)]
    # spawn, not fork: the test process runs threads by now (the session's Ray, tqdm's monitor), and a
    # child forked while one of them held a lock hung this test until its timeout (once, in the suite)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        entries = pool.map(_build, jobs)
    assert len(set(entries)) == 3
    cache = FrameCache(tmp_path / "c", resize=(24, 32))
    for v in videos:
        assert [decoded_index(f) for f in cache.load(v)] == list(range(30))
    assert not list((tmp_path / "c").rglob("*.tmp"))


@pytest.mark.benchmark  # a timing: never asserted in the default suite (it failed once under load)
def test_cached_read_is_much_faster_than_decoding(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=48, size=(120, 160), gop=48)
    cache = FrameCache(tmp_path / "c", resize=(128, 171))
    cache.build(video)
    clips = [list(range(s, s + 16, 2)) for s in range(0, 32, 3)]

    def rate(read):
        t0 = time.perf_counter()
        for c in clips * 3:
            read(c)
        return time.perf_counter() - t0

    with open_video(video, resize=(128, 171)) as reader:
        decode = rate(reader.get_frames)
    frames = cache.load(video)
    cached = rate(lambda c: np.asarray(frames[c]))
    print(f"\ncached read {cached:.3f} s vs decoding {decode:.3f} s: {decode / cached:.1f}x")
    assert cached * 5 < decode, (cached, decode)


def test_loader_with_cache_gives_the_same_clips(folder_root, tmp_path):
    base = dict(
        format="folder",
        root=str(folder_root),
        clip_len=4,
        sampling_rate=2,
        crop=16,
        resize=(24, 32),
        batch_size=4,
        num_workers=0,
        eval_clips=3,
    )
    plain = list(make_loader(DataSpec(**base, cache=False), "test"))
    cached_loader = make_loader(DataSpec(**base, cache=True), "test", cache_dir=tmp_path / "c")
    cached = list(cached_loader)
    assert len(list((tmp_path / "c").rglob("*.npy"))) == 4
    assert all(torch.equal(a["video"], b["video"]) for a, b in zip(plain, cached))
    assert cached_loader.stats()["cache"] == str(tmp_path / "c")


def test_auto_cache_rule(folder_root, tmp_path, monkeypatch):
    spec = DataSpec(format="folder", root=str(folder_root), crop=16, resize=(24, 32), num_workers=0)
    assert make_loader(spec, "train", cache_dir=tmp_path).dataset.cache is not None  # 8 × 40 × 24×32×3 B
    monkeypatch.setenv("STARCH_CACHE_AUTO_GB", "0.0001")  # ~100 kB limit
    assert make_loader(spec, "train", cache_dir=tmp_path).dataset.cache is None
    use, why = should_cache(10 * 2**30, tmp_path)
    assert not use and "GiB" in why


def test_a_process_keeps_recent_entries_mapped_and_does_not_pickle_them(tmp_path, monkeypatch):
    import pickle

    import trainers.data.cache as cache_module

    videos = [write_video(tmp_path / f"v{i}.mp4", frames=12) for i in range(3)]
    cache = FrameCache(tmp_path / "c", resize=None)
    for video in videos:
        cache.build(video)
    opened = []
    plain = np.load
    monkeypatch.setattr(cache_module.np, "load", lambda *a, **k: opened.append(a[0]) or plain(*a, **k))
    monkeypatch.setattr(cache_module, "OPEN_ENTRIES", 2)
    first = cache.load(videos[0])
    assert cache.load(videos[0]) is first and len(opened) == 1  # the second clip: a slice of the mapped entry
    cache.load(videos[1])
    cache.load(videos[2])  # the least recently used (videos[0]) is unmapped
    assert cache.load(videos[0]) is not first and len(opened) == 4
    assert np.array_equal(cache.load(videos[0]), first)
    assert pickle.loads(pickle.dumps(cache))._open == {}  # a DataLoader worker maps its own
