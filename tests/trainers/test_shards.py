"""The sharded frame store: the decoder's frames, keyed by data + resize, safe when several
processes build it, and never trusting a partial or corrupted shard."""

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.videos import decoded_index, write_random_bytes, write_textured_video, write_video
from trainers.data.datasets import DataSpec
from trainers.data.loader import make_loader
from trainers.data.shards import ShardLock, ShardStore, ShardStoreError
from trainers.data.video import VideoDecodeError, open_video

RESIZE = (24, 32)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("shard-videos")
    paths = [write_video(root / f"v{i}.mp4", frames=20 + 3 * i) for i in range(5)]
    paths.append(write_textured_video(root / "textured.mp4", frames=30, size=(60, 80), seed=1))
    paths.append(write_textured_video(root / "textured.avi", frames=25, size=(60, 80), seed=2))
    return [str(p) for p in paths]


def test_store_returns_exactly_the_decoders_frames(videos, tmp_path):
    store = ShardStore(videos, resize=RESIZE, root=tmp_path, shard_videos=3).build()
    assert store.num_shards == 3 and sorted(store.built_shards) == [0, 1, 2]
    rng = np.random.default_rng(0)
    for path in videos:
        frames = store.load(path)
        assert isinstance(frames.base, np.memmap) or isinstance(frames, np.memmap)
        n = frames.shape[0]
        for indices in ([0, 1, 2], [n - 1], sorted(rng.choice(n, 6, replace=False).tolist())):
            with open_video(path, resize=RESIZE) as reader:
                assert np.array_equal(frames[np.asarray(indices)], reader.get_frames(indices))
    flat = store.load(videos[2])  # frame i of a write_video file encodes i in its brightness
    assert flat.shape == (26, *RESIZE, 3) and [decoded_index(f) for f in flat] == list(range(26))
    assert store.verify() == len(videos)
    assert not list(store.root.glob("*.tmp")) and not list(store.root.glob("*.lock"))


def test_loader_with_shards_gives_the_same_batches_as_decoding(folder_root, tmp_path):
    base = dict(
        format="folder", root=str(folder_root), clip_len=4, sampling_rate=2, crop=16, resize=RESIZE, batch_size=4
    )
    for subset, workers in (("train", 2), ("test", 0)):  # workers: the store is pickled to them
        plain = list(make_loader(DataSpec(**base, num_workers=0, cache=False), subset, seed=3))
        spec = DataSpec(**base, num_workers=workers, cache="shards", shard_dir=str(tmp_path))
        loader = make_loader(spec, subset, seed=3)
        stored = list(loader)
        assert len(plain) == len(stored) > 0
        assert all(torch.equal(a["video"], b["video"]) for a, b in zip(plain, stored))
        assert all(torch.equal(a["video_id"], b["video_id"]) for a, b in zip(plain, stored))
        assert Path(loader.stats()["cache"]).parent == tmp_path
    assert len(list(tmp_path.glob("*/index.npz"))) == 2  # one store per subset


def test_key_is_data_plus_resolution(videos, tmp_path):
    first = ShardStore(videos, resize=RESIZE, root=tmp_path).root
    assert ShardStore(list(reversed(videos)), resize=RESIZE, root=tmp_path).root == first  # a set of videos
    assert ShardStore(videos, resize=(32, 44), root=tmp_path).root != first
    assert ShardStore(videos, resize=None, root=tmp_path).root != first
    assert ShardStore(videos[:-1], resize=RESIZE, root=tmp_path).root != first
    copy = tmp_path / "copy.mp4"
    write_video(copy, frames=12)
    store = ShardStore([str(copy)], resize=RESIZE, root=tmp_path).build()
    write_video(copy, frames=16)  # the file changes: another store, never the stale frames
    os.utime(copy, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = ShardStore([str(copy)], resize=RESIZE, root=tmp_path)
    assert again.root != store.root and not again.is_built()
    assert again.build().load(copy).shape[0] == 16


def test_bad_video_is_recorded_and_skipped_by_the_loader(bad_root, tmp_path, caplog):
    spec = DataSpec(
        format="folder",
        root=str(bad_root),
        clip_len=4,
        sampling_rate=2,
        crop=16,
        resize=RESIZE,
        batch_size=4,
        num_workers=0,
        sample_timeout_s=10,
        cache="shards",
        shard_dir=str(tmp_path),
    )
    loader = make_loader(spec, "train")
    assert sum(len(b["label"]) for b in loader) == 4  # the four good videos
    bad = {os.path.basename(p): r for p, r in loader.stats()["bad_videos"].items()}
    assert {"zero.mp4", "random.avi"} <= set(bad) and "empty file" in bad["zero.mp4"]
    assert [os.path.basename(p) for p in loader.stats()["short_videos"]] == ["three_frames.mp4"]
    with pytest.raises(VideoDecodeError, match="Invalid data"):
        loader.dataset.cache.load(bad_root / "train" / "bad" / "random.avi")


# ------------------------------------------------------------------------ several builders at once

_BUILDER = textwrap.dedent(
    """
    import json, sys
    from trainers.data.shards import ShardStore
    paths, root, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    if len(sys.argv) > 4:  # a decode server that fails on purpose (tests/decode_faults.py)
        import trainers.data.decode_process as decode_process
        decode_process.SERVER = sys.argv[4]
    store = ShardStore(paths, resize=(24, 32), root=root, shard_videos=1, lock_timeout_s=30).build()
    json.dump({"built": store.built_shards, "frames": [int(store.load(p).shape[0]) for p in paths]}, open(out, "w"))
    """
)


def num_frames(path) -> int:
    with open_video(path) as reader:
        return reader.num_frames


def _start_builder(paths, root, out, *server, **env):
    return subprocess.Popen(
        [sys.executable, "-c", _BUILDER, json.dumps(paths), str(root), str(out), *server],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )


def test_two_processes_build_one_store_together(videos, tmp_path):
    procs = [_start_builder(videos, tmp_path, tmp_path / f"out{i}.json") for i in range(2)]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    results = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2)]
    built = [set(r["built"]) for r in results]
    assert built[0] | built[1] == set(range(len(videos))) and not built[0] & built[1]  # each shard once
    store = ShardStore(videos, resize=RESIZE, root=tmp_path, shard_videos=1)
    assert results[0]["frames"] == results[1]["frames"] == [num_frames(p) for p in videos]
    assert store.verify() == len(videos)
    assert not list(store.root.glob("*.tmp")) and not list(store.root.glob("*.lock*"))


def test_killed_builder_leaves_nothing_readers_trust(videos, tmp_path):
    """A builder SIGKILLed while it holds shard 2 (its decoder hangs there): its lock and its
    .tmp stay behind, no marker exists; the next builder takes the shard over and cleans up."""
    from tests.decode_faults import HangOnV0, server

    assert Path(sorted(videos)[2]).name in HangOnV0.hang_on
    proc = _start_builder(videos, tmp_path, tmp_path / "out.json", server(HangOnV0))
    store = ShardStore(videos, resize=RESIZE, root=tmp_path, shard_videos=1, lock_timeout_s=30)
    deadline = time.monotonic() + 180  # generous: a loaded machine starts processes slowly
    while not store.shard_path(2, ".lock").exists() or store.marker(1) is None:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert store.marker(2) is None and store.shard_path(2, ".lock").exists() and list(store.root.glob("*2.*.tmp"))
    assert not store.is_built()
    store.build()  # same host, dead pid: the lock is stale at once
    assert 2 in store.built_shards and 0 not in store.built_shards  # finished shards are kept
    assert store.verify() == len(videos)
    assert not list(store.root.glob("*.tmp")) and not list(store.root.glob("*.lock*"))


def test_lock_of_a_silent_holder_goes_stale_after_the_timeout(tmp_path):
    path = tmp_path / "shard-00000.lock"
    path.write_text(json.dumps({"host": "another-node", "pid": 1, "token": "x"}))
    assert not ShardLock(path, timeout_s=30).acquire()  # fresh heartbeat on another node: keep out
    old = time.time() - 31
    os.utime(path, (old, old))
    lock = ShardLock(path, timeout_s=30)
    assert lock.acquire() and json.loads(path.read_text())["token"] == lock.token
    lock.release()
    assert not path.exists()


# ------------------------------------------------------------------------ partial or corrupted shards


def _built(videos, root):
    return ShardStore(videos, resize=RESIZE, root=root, shard_videos=3).build()


def test_truncated_shard_is_rebuilt(videos, tmp_path, caplog):
    store = _built(videos, tmp_path)
    data = store.shard_path(1, ".u8")
    data.write_bytes(data.read_bytes()[:1000])  # e.g. a copy that stopped half-way
    again = ShardStore(videos, resize=RESIZE, root=tmp_path, shard_videos=3)
    with caplog.at_level(logging.WARNING, logger="trainers.data.shards"):
        assert not again.is_built()
        again.build()
    assert again.built_shards == [1] and "partial or corrupted" in caplog.text
    assert again.verify() == len(videos)


def test_shard_without_valid_marker_is_rebuilt(videos, tmp_path):
    store = _built(videos, tmp_path)
    (store.root / "index.npz").unlink()
    store.shard_path(0, ".json").write_text('{"version": 1, "nbytes": ')  # a marker cut short
    store.shard_path(2, ".json").unlink()  # builder killed between the data rename and the marker
    again = ShardStore(videos, resize=RESIZE, root=tmp_path, shard_videos=3).build()
    assert sorted(again.built_shards) == [0, 2] and again.verify() == len(videos)


def test_corrupted_frames_are_refused_by_verify(videos, tmp_path):
    store = _built(videos, tmp_path)
    data = store.shard_path(1, ".u8")
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte, same size
    data.write_bytes(bytes(raw))
    with pytest.raises(ShardStoreError, match=r"shard-00001\.u8 holds corrupted frames of .*crc32"):
        ShardStore(videos, resize=RESIZE, root=tmp_path, shard_videos=3).verify()


def test_reading_before_building_is_a_clear_error(videos, tmp_path):
    with pytest.raises(ShardStoreError, match="no index: call build"):
        ShardStore(videos, resize=RESIZE, root=tmp_path).load(videos[0])


# ------------------------------------------------------------------------ config


def test_data_config_validates_the_store_settings(tmp_path):
    base = dict(format="folder", root="/data")
    assert DataSpec(**base, cache="shards", shard_dir=str(tmp_path)).to_dict()["shard_dir"] == str(tmp_path)
    with pytest.raises(ValueError, match="shard_dir is only used with cache: shards"):
        DataSpec(**base, shard_dir=str(tmp_path))
    with pytest.raises(ValueError, match="'shards'"):
        DataSpec(**base, cache="disk")
    with pytest.raises(ValueError, match="shard_dir: String should have at least 1 character"):
        DataSpec(**base, cache="shards", shard_dir="")
    assert DataSpec(**base).cache == "auto"  # the default keeps the per-video frame cache


def test_random_bytes_alone_still_build_a_store(tmp_path):
    junk = write_random_bytes(tmp_path / "junk.mp4")
    store = ShardStore([str(junk)], resize=RESIZE, root=tmp_path / "s").build()
    with pytest.raises(VideoDecodeError):
        store.load(junk)


def test_experiment_file_checks_the_store_settings_before_anything_runs():
    from search.config import load_experiment

    example = REPO / "examples" / "experiment.yaml"
    data = load_experiment(example, overrides={"data.cache": "shards", "data.shard_dir": "/shared/s"}).to_data()
    assert (data.cache, data.shard_dir) == ("shards", "/shared/s")
    with pytest.raises(ValueError, match=r"data.*shard_dir is only used with cache: shards"):
        load_experiment(example, overrides={"data.shard_dir": "/shared/s"})
