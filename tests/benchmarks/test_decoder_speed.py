"""Clip throughput (clips/s) of the video backends (data.decoder) on the same files: decord, pyav and
torchcodec (when it loads here), L=8, s=2, one reader opened per clip as in training (each sample is
another video), in one process (the decode child's work, without the pipe).

Run: pytest -m benchmark -s tests/benchmarks/test_decoder_speed.py

Rounds interleave the backends (the order rotates every round) so that load from other work on the
machine falls on all of them alike; the table gives min / median / max clips/s over the rounds and
the median of the per-round ratios to decord.
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.videos, without tests/benchmarks/__init__.py

from tests.videos import DECODER_PARAMS, write_textured_video  # noqa: E402
from trainers.data.clips import pick_clip  # noqa: E402
from trainers.data.video import open_video  # noqa: E402

L, S, ROUNDS, VIDEOS, CLIPS = 8, 2, 5, 10, 40
CASES = {
    "small mp4 32x44, 48 fr": dict(suffix=".mp4", size=(32, 44), frames=48, resize=None),
    "UCF-like avi 320x240 -> 128x171, 100 fr": dict(suffix=".avi", size=(240, 320), frames=100, resize=(128, 171)),
}


def usable_decoders() -> list[str]:
    return [p.values[0] for p in DECODER_PARAMS if not any(m.args and m.args[0] for m in p.marks)]


def one_round(decoder, jobs, resize) -> float:
    t0 = time.perf_counter()
    for path, indices in jobs:
        with open_video(path, resize=resize, decoder=decoder) as reader:
            assert reader.get_frames(indices).shape[0] == L
    return len(jobs) / (time.perf_counter() - t0)


@pytest.mark.benchmark
@pytest.mark.timeout(900)
def test_decoder_speed(tmp_path):
    decoders = usable_decoders()
    assert decoders[0] == "decord"
    rows = []
    for name, c in CASES.items():
        paths = [
            write_textured_video(tmp_path / f"{name[:5]}{i}{c['suffix']}", frames=c["frames"], size=c["size"], seed=i)
            for i in range(VIDEOS)
        ]
        rng = np.random.default_rng(0)
        jobs = [
            (
                paths[k % VIDEOS],
                pick_clip(c["frames"], clip_len=L, sampling_rate=S, mode="train", seed=int(rng.integers(1 << 30))),
            )
            for k in range(CLIPS)
        ]
        for d in decoders:  # warm-up: the libraries' imports and first opens are not timed
            one_round(d, jobs[:2], c["resize"])
        rates = {d: [] for d in decoders}
        for r in range(ROUNDS):
            order = decoders[r % len(decoders) :] + decoders[: r % len(decoders)]
            for d in order:
                rates[d].append(one_round(d, jobs, c["resize"]))
        for d in decoders:
            ratio = statistics.median(a / b for a, b in zip(rates[d], rates["decord"]))
            rows.append((name, d, min(rates[d]), statistics.median(rates[d]), max(rates[d]), ratio))
    print()
    print(f"{'videos':40s} {'decoder':11s} {'min':>7s} {'median':>7s} {'max':>7s} {'x decord':>9s}   (clips/s)")
    for name, d, lo, med, hi, ratio in rows:
        print(f"{name:40s} {d:11s} {lo:7.1f} {med:7.1f} {hi:7.1f} {ratio:9.2f}")


@pytest.mark.benchmark
@pytest.mark.timeout(900)
def test_decode_child_cost(tmp_path):
    """What one decode child costs with each backend: its start (interpreter + the decoder's library,
    until it says it is ready) and its resident memory after checking one video. Rounds interleave."""
    from trainers.data.decode_process import DecodeProcess

    video = write_textured_video(tmp_path / "v.mp4", frames=24, size=(32, 44))
    starts, rss = {d: [] for d in usable_decoders()}, {d: [] for d in usable_decoders()}
    for r in range(3):
        order = list(starts)[r % len(starts) :] + list(starts)[: r % len(starts)]
        for d in order:
            process = DecodeProcess(decoder=d, timeout_s=120)
            try:
                t0 = time.perf_counter()
                process.request({"op": "ping"})
                starts[d].append(time.perf_counter() - t0)
                process.request({"op": "check", "path": str(video), "resize": None})
                with open(f"/proc/{process.pid}/status") as f:
                    rss[d].append(next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024)
            finally:
                process.close()
    print()
    print(f"{'decoder':11s} {'start s (min / median / max)':>30s} {'RSS MB (median)':>16s}")
    for d in starts:
        s = starts[d]
        print(f"{d:11s} {min(s):10.2f} {statistics.median(s):9.2f} {max(s):9.2f} {statistics.median(rss[d]):16.0f}")
