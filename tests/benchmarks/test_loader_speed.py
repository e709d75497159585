"""Clip throughput (clips/s) for L=8, s=2: a PyAV sequential-decode baseline vs our decord reader
vs the decoded-frame cache, on tiny mp4s and on UCF101-like 320×240 25 fps avi files.

Run: pytest -m benchmark -s tests/benchmarks/test_loader_speed.py

"reader" rows: one process, raw uint8 clips (the cost of getting frames).
"loader" rows: the whole pipeline of trainers.data.loader (2 DataLoader workers, decode children,
crop + normalise, batches of 8), as a training loop sees it: epochs of 100 clips, timed over two
epochs after a warm-up one, so they include starting the workers and decode children each epoch.
"""

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.videos, without tests/benchmarks/__init__.py

from tests.videos import write_textured_video  # noqa: E402
from trainers.data.cache import FrameCache  # noqa: E402
from trainers.data.clips import pick_clip  # noqa: E402
from trainers.data.datasets import DataSpec, build_index  # noqa: E402
from trainers.data.loader import make_loader  # noqa: E402
from trainers.data.video import open_video  # noqa: E402

L, S = 8, 2


def pyav_clip(path, indices, resize):
    """Baseline: decode from the start up to the last needed frame, keep the needed ones."""
    import av

    wanted, out = set(int(i) for i in indices), {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                if resize:
                    frame = frame.reformat(width=resize[1], height=resize[0])
                out[i] = frame.to_ndarray(format="rgb24")
            if i >= max(wanted):
                break
    return np.stack([out[int(i)] for i in indices])  # (T, H, W, 3)


def decord_clip(path, indices, resize):
    with open_video(path, resize=resize) as reader:
        return reader.get_frames(indices)


def clips_per_second(read, jobs):
    t0 = time.perf_counter()
    for path, indices in jobs:
        frames = read(path, indices)
        assert frames.shape[0] == L
    return len(jobs) / (time.perf_counter() - t0)


def loader_rate(spec, cache_dir, epochs=2):
    index = build_index(spec, "train")
    index = dataclasses.replace(index, videos=index.videos * 5)  # 100 clips per epoch, like the readers
    loader = make_loader(spec, "train", seed=0, cache_dir=cache_dir, index=index)
    list(loader)  # warm-up epoch: worker start, cache build if any
    t0, n = time.perf_counter(), 0
    for _ in range(epochs):
        n += sum(len(b["label"]) for b in loader)
    assert loader.stats()["num_bad_videos"] == 0
    return n / (time.perf_counter() - t0)


@pytest.mark.benchmark
@pytest.mark.timeout(900)
def test_loader_speed(tmp_path):
    cases = {
        "small mp4 32x44, 48 fr": dict(suffix=".mp4", size=(32, 44), frames=48, resize=None, crop=32),
        "UCF-like avi 320x240, 100 fr": dict(suffix=".avi", size=(240, 320), frames=100, resize=(128, 171), crop=112),
    }
    rows = []
    for name, c in cases.items():
        root = tmp_path / name.split()[0]
        paths = [
            write_textured_video(
                root / "train" / f"c{i % 4}" / f"v{i}{c['suffix']}", frames=c["frames"], size=c["size"], seed=i
            )
            for i in range(20)
        ]
        rng = np.random.default_rng(0)
        jobs = [
            (p, pick_clip(c["frames"], clip_len=L, sampling_rate=S, mode="train", seed=int(rng.integers(1 << 30))))
            for p in paths * 5
        ]  # 100 random train clips
        cache = FrameCache(tmp_path / "cache", resize=c["resize"])
        t0 = time.perf_counter()
        for p in paths:
            cache.build(p)
        build_s = time.perf_counter() - t0
        base = clips_per_second(lambda p, i: pyav_clip(p, i, c["resize"]), jobs)
        ours = clips_per_second(lambda p, i: decord_clip(p, i, c["resize"]), jobs)
        cached = clips_per_second(lambda p, i: np.asarray(cache.load(p)[i]), jobs)
        spec = dict(
            format="folder",
            root=str(root),
            clip_len=L,
            sampling_rate=S,
            crop=c["crop"],
            resize=c["resize"],
            batch_size=8,
            num_workers=2,
        )
        load_decord = loader_rate(DataSpec(**spec, cache=False), None)
        load_cache = loader_rate(DataSpec(**spec, cache=True), tmp_path / "cache")
        rows += [
            (name, "reader: PyAV sequential (baseline)", base, base),
            (name, "reader: decord get_batch", ours, base),
            (name, f"reader: frame cache (build {build_s:.1f} s / 20 videos)", cached, base),
            (name, "loader: decord, 2 workers", load_decord, base),
            (name, "loader: frame cache, 2 workers", load_cache, base),
        ]
    print()
    print(f"{'videos':30s} {'method':48s} {'clips/s':>9s} {'x baseline':>10s}")
    for name, method, rate, base in rows:
        print(f"{name:30s} {method:48s} {rate:9.1f} {rate / base:10.2f}")
