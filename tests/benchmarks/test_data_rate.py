"""Data at Kinetics scale: clips/s one CPU core delivers (decord, the per-video frame cache, the
sharded frame store) against the clips/s one GPU would consume per network, and so how many cores
per GPU each network needs.

Run: pytest -m benchmark -s tests/benchmarks/test_data_rate.py
     STARCH_GPU_EFFICIENCY=0.4 (default, an assumption) STARCH_BENCH_VIDEOS=64 (default)

Supply: the same generated files (STARCH_BENCH_VIDEOS textured H.264 mp4, 320×240, 64 frames)
read by `trainers.loader.make_loader` with num_workers=0 and torch.set_num_threads(1), train mode
(one random 8-frame clip, s = 2, per video; resize 128×171, random 112 crop, flip, normalise). What
one core delivers is counted in clips per CPU-second: the CPU time of this process plus its decode
child (from /proc/<pid>/stat), so the figure does not depend on how busy the shared machine is
(wall clips/s are printed beside it). Rounds are interleaved (decord, cache, store, decord, …);
each round is one epoch over the videos × 4; the table gives min / median / max over rounds.
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
from trainers.datasets import DataSpec, build_index  # noqa: E402
from trainers.loader import make_loader  # noqa: E402

GPU_PEAK_BF16 = {"A100": 312e12, "H100": 989e12}  # dense bf16 FLOP/s, vendor data sheets
DEFAULT_EFFICIENCY = 0.4  # assumption; set STARCH_GPU_EFFICIENCY to a measured value
NETS = ("r3d_18", "mc3", "r2plus1d_18", "f-r2d", "p3d_199")
ROUNDS, REPEAT = 5, 4


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


def _raw_clips(store, index, rng_seed=0) -> int:
    from trainers.clips import pick_clip

    n = 0
    for i, (path, _) in enumerate(index.videos):
        frames = store.load(path)
        idx = pick_clip(len(frames), clip_len=8, sampling_rate=2, mode="train", seed=[rng_seed, i])
        clip = torch.from_numpy(store.read_clip(path, idx))  # (T, H, W, 3) uint8
        n += clip.shape[0] > 0
    return n


@pytest.mark.benchmark
@pytest.mark.timeout(1800)
def test_data_rate(tmp_path):
    torch.set_num_threads(1)
    efficiency = float(os.environ.get("STARCH_GPU_EFFICIENCY", DEFAULT_EFFICIENCY))
    num_videos = int(os.environ.get("STARCH_BENCH_VIDEOS", 64))
    root = tmp_path / "videos"
    for i in range(num_videos):
        write_textured_video(root / "train" / f"c{i % 8}" / f"v{i:03d}.mp4", frames=64, size=(240, 320), seed=i)
    base = dict(
        format="folder", root=str(root), clip_len=8, sampling_rate=2, crop=112, resize=(128, 171), num_workers=0
    )
    base["batch_size"] = 8
    index = build_index(DataSpec(**base), "train")
    index = dataclasses.replace(index, videos=index.videos * REPEAT)  # epochs of REPEAT clips per video

    t0 = time.perf_counter()
    store_loader = make_loader(
        DataSpec(**base, cache="shards", shard_dir=str(tmp_path / "shards")), "train", index=index
    )
    store_build_s = time.perf_counter() - t0
    store = store_loader.dataset.cache
    t0 = time.perf_counter()
    cache_loader = make_loader(DataSpec(**base, cache=True), "train", index=index, cache_dir=tmp_path / "cache")
    list(cache_loader)  # the frame cache builds its entries during its first epoch
    cache_build_s = time.perf_counter() - t0
    loaders = {
        "decord (decode child)": make_loader(DataSpec(**base, cache=False), "train", index=index),
        "frame cache (per-video .npy)": cache_loader,
        "frame store (shards)": store_loader,
    }
    names = [*loaders, "frame store, uint8 only"]
    rates: dict[str, list[float]] = {name: [] for name in names}  # clips per CPU-second
    walls: dict[str, list[float]] = {name: [] for name in names}  # clips per wall second
    list(loaders["decord (decode child)"])  # warm-up: decode child started, files in page cache
    list(store_loader)
    for r in range(ROUNDS):
        for name, loader in loaders.items():
            cpu, wall = _measure(lambda: _epoch(loader), lambda: loader.dataset.decoder().pid)
            rates[name].append(cpu)
            walls[name].append(wall)
        cpu, wall = _measure(lambda: _raw_clips(store, index, r))
        rates["frame store, uint8 only"].append(cpu)
        walls["frame store, uint8 only"].append(wall)
    for loader in loaders.values():
        loader.close()

    print()
    print(
        f"clips/s one core delivers: {num_videos} textured mp4 320x240 x 64 frames -> 8x112x112 clips (s=2) "
        f"from 128x171, {ROUNDS} interleaved rounds of {len(index.videos)} clips, torch threads 1, num_workers 0"
    )
    print(f"{'loader':32s} {'clips per CPU-second min / median / max':>40s} {'clips/s wall (median)':>22s}")
    for name, values in rates.items():
        spread = f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"
        print(f"{name:32s} {spread:>40s} {statistics.median(walls[name]):22.1f}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    frames = sum(int(store.load(p).shape[0]) for p, _ in index.videos[:num_videos])
    print(
        f"store: {store.nbytes() / 2**20:.1f} MiB on disk = {frames} frames x 128 x 171 x 3 B "
        f"({frames * 128 * 171 * 3 / 2**20:.1f} MiB), built in {store_build_s:.1f} s; "
        f"frame cache built in {cache_build_s:.1f} s (incl. its first epoch)"
    )

    per_core = {
        "decord": statistics.median(rates["decord (decode child)"]),
        "store": statistics.median(rates["frame store (shards)"]),
    }
    print()
    print(
        f"GPU demand = peak x efficiency / (3 x 2 x MACs per clip); efficiency {efficiency:g} "
        f"({'STARCH_GPU_EFFICIENCY' if 'STARCH_GPU_EFFICIENCY' in os.environ else 'assumed default'}); "
        f"cores/GPU = demand / clips per CPU-second (median): decord {per_core['decord']:.1f}, "
        f"store {per_core['store']:.1f}"
    )
    header = f"{'network':12s} {'clip':>9s} {'GMACs':>7s}"
    for gpu in GPU_PEAK_BF16:
        header += f" {gpu + ' clips/s':>14s} {'cores decord':>12s} {'cores store':>11s}"
    print(header)
    for name in NETS:
        for frames_per_clip in (8, 16):
            spec = NETWORKS[name].replace(frames=frames_per_clip, crop=112)
            line = f"{name:12s} {f'{frames_per_clip}x112x112':>9s} {cost(spec).flops / 1e9:7.1f}"
            for peak in GPU_PEAK_BF16.values():
                demand = gpu_demand(spec, peak, efficiency)
                line += f" {demand:14.0f} {demand / per_core['decord']:12.1f} {demand / per_core['store']:11.1f}"
            print(line)
    assert all(min(v) > 0 for v in rates.values())
