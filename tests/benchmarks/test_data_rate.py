"""Data at Kinetics scale: clips/s one CPU core delivers (decord, the per-video frame cache, the
sharded frame store) against the clips/s one GPU would consume per network, and so how many cores
per GPU each network needs.

Run: pytest -m benchmark -s tests/benchmarks/test_data_rate.py
     STARCH_GPU_EFFICIENCY=0.4 (default, an assumption) STARCH_BENCH_VIDEOS=64 (default)

Supply: the same generated files (STARCH_BENCH_VIDEOS textured H.264 mp4, 320×240, 64 frames)
read by `trainers.data.loader.make_loader` with num_workers=0 and torch.set_num_threads(1), train mode
(one random clip of L = 8 or 16 frames, s = 2, per video; resize 128×171, random 112 crop, flip, normalise). What
one core delivers is counted in clips per CPU-second: the CPU time of this process plus its decode
child (from /proc/<pid>/stat), so the figure does not depend on how busy the shared machine is
(wall clips/s are printed beside it). Rounds are interleaved (decord, cache, store, decord, …);
each round is one epoch over the videos × 2; the table gives min / median / max over rounds.
"store, uint8 only" is the store's raw clip read without crop / normalise (what is left if those
move to the GPU).

Demand: clips/s = peak × efficiency / (3 × 2 × MACs per clip): `cost(spec).flops` are MACs,
× 2 FLOPs per MAC, × 3 for forward + backward. Peaks are the bf16 dense tensor-core figures of the
vendors' data sheets (A100 312 TFLOP/s, H100 SXM 989 TFLOP/s). The efficiency (achieved / peak)
is STARCH_GPU_EFFICIENCY, 0.4 unless set: an ASSUMPTION until the efficiency benchmark measures it.
"""

import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.videos, without tests/benchmarks/__init__.py

from spaces import NETWORKS, cost  # noqa: E402
from tests.videos import write_textured_video  # noqa: E402
from trainers.data.cache import FrameCache  # noqa: E402
from trainers.data.datasets import DataSpec, build_index  # noqa: E402
from trainers.data.loader import make_loader  # noqa: E402

GPU_PEAK_BF16 = {"A100": 312e12, "H100": 989e12}  # dense bf16 FLOP/s, vendor data sheets
DEFAULT_EFFICIENCY = 0.4  # assumption; set STARCH_GPU_EFFICIENCY to a measured value
NETS = ("r3d_18", "mc3", "r2plus1d_18", "f-r2d", "p3d_199")
ROUNDS, REPEAT = 3, 2
CLIP_LENS = (8, 16)


def gpu_demand(spec, peak: float, efficiency: float) -> float:
    """Clips/s one GPU trains through: peak × efficiency / (3 × 2 × MACs per clip)."""
    return peak * efficiency / (3 * 2 * cost(spec).flops)


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far; 0 for None."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _measure(run, decoder_pid=lambda: None) -> tuple[float, float]:
    """(clips per CPU-second of this process + its decode child, clips per wall second)."""
    pid = decoder_pid()
    cpu0, child0, t0 = time.process_time(), _cpu_s(pid), time.perf_counter()
    n = run()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0 + (_cpu_s(decoder_pid()) - child0 if decoder_pid() == pid else 0.0)
    return n / cpu, n / wall


def _epoch(loader) -> int:
    return sum(len(batch["label"]) for batch in loader)


def _raw_clips(store, index, clip_len, rng_seed=0) -> int:
    from trainers.data.clips import pick_clip

    n = 0
    for i, (path, _) in enumerate(index.videos):
        frames = store.load(path)
        idx = pick_clip(len(frames), clip_len=clip_len, sampling_rate=2, mode="train", seed=[rng_seed, i])
        clip = torch.from_numpy(store.read_clip(path, idx))  # (T, H, W, 3) uint8
        n += clip.shape[0] > 0
    return n


@pytest.mark.benchmark
@pytest.mark.timeout(3000)
def test_data_rate(tmp_path):
    torch.set_num_threads(1)
    efficiency = float(os.environ.get("STARCH_GPU_EFFICIENCY", DEFAULT_EFFICIENCY))
    num_videos = int(os.environ.get("STARCH_BENCH_VIDEOS", 64))
    root = tmp_path / "videos"
    for i in range(num_videos):
        write_textured_video(root / "train" / f"c{i % 8}" / f"v{i:03d}.mp4", frames=64, size=(240, 320), seed=i)
    base = dict(format="folder", root=str(root), sampling_rate=2, crop=112, resize=(128, 171), num_workers=0)
    base["batch_size"] = 8
    index = build_index(DataSpec(**base), "train")
    index = dataclasses.replace(index, videos=index.videos * REPEAT)  # epochs of REPEAT clips per video

    t0 = time.perf_counter()
    shards = dict(cache="shards", shard_dir=str(tmp_path / "shards"))
    store = make_loader(DataSpec(**base, **shards), "train", index=index).dataset.cache
    store_build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for path, _ in index.videos[:num_videos]:  # the frame cache builds entries as clips ask for them
        FrameCache(tmp_path / "cache", resize=(128, 171)).build(path)
    cache_build_s = time.perf_counter() - t0
    loaders, raw = {}, {}
    for clip_len in CLIP_LENS:  # one store and one cache serve both clip lengths (frames are not in the key)
        spec = dict(base, clip_len=clip_len)
        loaders[clip_len, "decord (decode child)"] = make_loader(DataSpec(**spec, cache=False), "train", index=index)
        loaders[clip_len, "frame cache (per-video .npy)"] = make_loader(
            DataSpec(**spec, cache=True), "train", index=index, cache_dir=tmp_path / "cache"
        )
        loaders[clip_len, "frame store (shards)"] = make_loader(DataSpec(**spec, **shards), "train", index=index)
        raw[clip_len, "frame store, uint8 only"] = clip_len
    rates = {key: [] for key in [*loaders, *raw]}  # clips per CPU-second
    walls = {key: [] for key in [*loaders, *raw]}  # clips per wall second
    for loader in loaders.values():  # warm-up: decode children started, files in the page cache
        next(iter(loader))
    for r in range(ROUNDS):
        for key, loader in loaders.items():
            cpu, wall = _measure(lambda: _epoch(loader), lambda: loader.dataset.decoder().pid)
            rates[key].append(cpu)
            walls[key].append(wall)
        for key, clip_len in raw.items():
            cpu, wall = _measure(lambda: _raw_clips(store, index, clip_len, r))
            rates[key].append(cpu)
            walls[key].append(wall)
    for loader in loaders.values():
        loader.close()

    print()
    print(
        f"what one core delivers: {num_videos} textured mp4 320x240 x 64 frames -> Lx112x112 clips (s=2) from "
        f"128x171, {ROUNDS} interleaved rounds of {len(index.videos)} clips, torch threads 1, num_workers 0"
    )
    print(f"{'L':>2s} {'loader':30s} {'clips per CPU-second min / median / max':>40s} {'clips/s wall (median)':>22s}")
    for (clip_len, name), values in sorted(rates.items(), key=lambda kv: kv[0][0]):
        spread = f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"
        print(f"{clip_len:2d} {name:30s} {spread:>40s} {statistics.median(walls[clip_len, name]):22.1f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    frames = sum(int(store.load(p).shape[0]) for p, _ in index.videos[:num_videos])
    print(
        f"store: {store.nbytes() / 2**20:.1f} MiB on disk = {frames} frames x 128 x 171 x 3 B "
        f"({frames * 128 * 171 * 3 / 2**20:.1f} MiB), built in {store_build_s:.1f} s; "
        f"frame cache built in {cache_build_s:.1f} s"
    )

    per_core = {
        (clip_len, kind): statistics.median(rates[clip_len, name])
        for clip_len in CLIP_LENS
        for kind, name in (("decord", "decord (decode child)"), ("store", "frame store (shards)"))
    }
    source = "STARCH_GPU_EFFICIENCY" if "STARCH_GPU_EFFICIENCY" in os.environ else "assumed default"
    print()
    print(
        f"GPU demand = peak x efficiency / (3 x 2 x MACs per clip), efficiency {efficiency:g} ({source}); "
        f"cores/GPU = demand / clips per CPU-second (median, same L)"
    )
    header = f"{'network':12s} {'clip':>10s} {'GMACs':>6s}"
    for gpu in GPU_PEAK_BF16:
        header += f" {gpu + ' clips/s':>13s} {'cores decord':>12s} {'cores store':>11s}"
    print(header)
    for name in NETS:
        for clip_len in CLIP_LENS:
            spec = NETWORKS[name].replace(frames=clip_len, crop=112)
            line = f"{name:12s} {f'{clip_len}x112x112':>10s} {cost(spec).flops / 1e9:6.1f}"
            for peak in GPU_PEAK_BF16.values():
                demand = gpu_demand(spec, peak, efficiency)
                cores = [demand / per_core[clip_len, kind] for kind in ("decord", "store")]
                line += f" {demand:13.0f} {cores[0]:12.1f} {cores[1]:11.1f}"
            print(line)
    assert all(min(v) > 0 for v in rates.values())
