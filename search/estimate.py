"""What a search will cost, before it starts: its work in FLOPs, and the time and device-hours that
work takes at a throughput that was measured or given. Pure arithmetic: no torch, no Ray.

    work per trial = 3 × MACs/clip × train videos × epochs          (forward + backward ≈ 3 forwards)
                   + MACs/clip × test videos × (1 + eval_clips) × evaluations    (clip@1 + video@1)
    throughput     = speeds per network: training and evaluation clips/s of one trial, from
                     - a measurement now (trainers.speed: a few real steps of each network),
                     - the proxy run's records, for `starch promote` (each network's achieved FLOP/s
                       of training, divided by its FLOPs per clip; its time outside the training
                       epochs as each trial's set-up), or
                     - `--assume-tflops T`: every trial achieves T × 10¹² FLOP/s (2 per multiply-accumulate)
    wall time      = search.demo_plan.predict_seconds: the trials laid out on the slots that run
                     side by side (longest first), plus a worker's start-up and the report
    device-hours   = Σ trial time × GPUs per trial (CPUs per trial on a CPU-only run)

FLOPs here follow the papers (and `cost()`): one multiply-accumulate per "FLOP", so "GFLOPs per
clip" match every table of starch. A throughput in TFLOP/s counts two operations per
multiply-accumulate, as hardware datasheets do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from search.demo_plan import REPORT_S, Sizes, evaluations, predict_seconds

FORWARD_BACKWARD = 3  # a training step ≈ one forward and a backward of twice its cost
FLOP_PER_MAC = 2


@dataclass(frozen=True)
class Network:
    """One distinct network of the plan: its key, label, MACs per clip and how many trials train it."""

    key: str
    label: str
    gflops: float  # multiply-accumulates per clip, ×10⁹ (spaces.cost)
    trials: int


def trial_gflops(gflops: float, sizes: Sizes, epochs: int, eval_every: int) -> float:
    """The work of one trial, in GFLOPs (multiply-accumulates, ×10⁹): training and evaluations."""
    train = FORWARD_BACKWARD * gflops * sizes.train_videos * epochs
    evaluate = gflops * sizes.test_videos * (1 + sizes.eval_clips) * evaluations(epochs, eval_every)
    return train + evaluate


def speeds_from_tflops(networks: list[Network], tflops: float) -> dict[str, dict[str, float]]:
    """Clips/s of each network if a trial achieves `tflops` × 10¹² FLOP/s (2 FLOPs per multiply-accumulate)."""
    if not tflops > 0:
        raise ValueError(f"--assume-tflops must be > 0 (FLOP/s × 10¹² one trial achieves), got {tflops}")
    return {
        n.key: _speed(
            tflops * 1e3 / (FLOP_PER_MAC * FORWARD_BACKWARD * n.gflops), tflops * 1e3 / (FLOP_PER_MAC * n.gflops)
        )
        for n in networks
    }


def speeds_from_achieved(
    networks: list[Network], achieved: dict[str, float], overhead: dict[str, float] | None = None
) -> dict[str, dict[str, float]]:
    """Clips/s of each network from the training FLOP/s it achieved before (GFLOP/s, 2 per
    multiply-accumulate, as the trials record it): the same rate at its FLOPs per clip now;
    evaluation (forward only) at the same rate. `overhead`: seconds of a trial outside its training
    epochs then (set-up, and its evaluations: an upper side), paid once per trial. Networks without
    a record are left out."""
    out = {}
    for n in networks:
        rate = achieved.get(n.key)
        if rate is not None and rate > 0:
            speed = _speed(rate / (FLOP_PER_MAC * FORWARD_BACKWARD * n.gflops), rate / (FLOP_PER_MAC * n.gflops))
            out[n.key] = {**speed, "setup_s": float((overhead or {}).get(n.key, 0.0))}
    return out


def _speed(train_clips_per_s: float, eval_clips_per_s: float) -> dict[str, float]:
    """A speed as trainers.speed.Speed.to_dict() has it, with no set-up time; videos_read 0: not
    measured (a set-up then already holds its first reads of the videos, see Estimate.wall_seconds)."""
    return {
        "train_clips_per_s": train_clips_per_s,
        "eval_clips_per_s": eval_clips_per_s,
        "setup_s": 0.0,
        "videos_read": 0,
    }


@dataclass(frozen=True)
class Estimate:
    """The cost of one plan; `source` says where the throughput came from."""

    networks: list[Network]
    sizes: Sizes | None  # None: the dataset is not known (no --data), so only the FLOPs per clip are
    epochs: int
    eval_every: int
    source: str
    speeds: dict[str, dict[str, float]] = field(default_factory=dict)  # key → clips/s; may be empty
    concurrency: int = 1
    startup_s: float = 0.0
    devices_per_trial: float = 0.0  # GPUs per trial (or CPUs, see device)
    device: str = "GPU"

    @property
    def trials(self) -> int:
        return sum(n.trials for n in self.networks)

    def total_gflops(self) -> float | None:
        if self.sizes is None:
            return None
        return sum(n.trials * trial_gflops(n.gflops, self.sizes, self.epochs, self.eval_every) for n in self.networks)

    def trial_seconds(self) -> dict[str, float]:
        """Predicted training + evaluation time of one trial of each network (measured set-up included)."""
        if self.sizes is None:
            return {}
        out = {}
        for n in self.networks:
            if n.key in self.speeds:
                one = predict_seconds(
                    [n.key], {n.key: self.speeds[n.key]}, self.sizes, _Recipe(self.eval_every), self.epochs, 1
                )
                out[n.key] = one - REPORT_S
        return out

    def wall_seconds(self) -> float | None:
        if self.sizes is None or not self.networks or any(n.key not in self.speeds for n in self.networks):
            return None
        keys = [n.key for n in self.networks for _ in range(n.trials)]
        # predict_seconds adds the slowest set-up's excess per video it read × all videos (a cold frame
        # cache, as a measurement sees it); a proxy's set-up already spans its reads of every video
        every = self.sizes.train_videos + self.sizes.test_videos
        speeds = {k: {**s, "videos_read": s["videos_read"] or every} for k, s in self.speeds.items()}
        return predict_seconds(
            keys, speeds, self.sizes, _Recipe(self.eval_every), self.epochs, self.concurrency, self.startup_s
        )

    def device_hours(self) -> float | None:
        seconds = self.trial_seconds()
        if self.sizes is None or len(seconds) < len(self.networks):
            return None
        return sum(n.trials * seconds[n.key] for n in self.networks) * self.devices_per_trial / 3600

    def lines(self) -> list[str]:
        """What `--dry-run` and the top of a run's log print."""
        out = [
            f"cost estimate ({self.trials} trial(s) of {len(self.networks)} network(s), {self.epochs} epoch(s) each):"
        ]
        total = self.total_gflops()
        if total is None:
            flops = sorted(n.gflops for n in self.networks)
            span = f"{flops[0]:.3g}" if flops[0] == flops[-1] else f"{flops[0]:.3g} … {flops[-1]:.3g}"
            out.append(
                "  work: unknown without the dataset (--data FORMAT:ROOT), which the clips per epoch are counted "
                f"from; {span} GFLOPs per clip"
            )
            return out
        out.append(
            f"  work: {total / 1e6:.4g} PFLOPs (multiply-accumulates; 3 × per training clip: {self.sizes.train_videos} "
            f"train videos × {self.epochs} epochs, + {self.sizes.test_videos} test videos × "
            f"{1 + self.sizes.eval_clips} clips × {evaluations(self.epochs, self.eval_every)} evaluations)"
        )
        out.append(f"  throughput: {self.source}")
        wall = self.wall_seconds()
        hours = self.device_hours()
        if wall is None or hours is None:
            missing = [n.label for n in self.networks if n.key not in self.speeds]
            out.append(
                "  time: not predicted"
                + (f" (no throughput for {', '.join(missing)})" if missing else "")
                + "; give --assume-tflops T (the FLOP/s × 10¹² one trial achieves)"
            )
            return out
        seconds = self.trial_seconds()
        out.append(
            f"  predicted: {_duration(wall)} wall ({self.concurrency} trial(s) at a time), "
            f"{hours:.3g} {self.device}-hours ({self.devices_per_trial:g} {self.device}(s) per trial)"
        )
        for n in self.networks:
            out.append(
                f"    {n.label:24s} {n.gflops:9.3g} GFLOPs/clip  {self.speeds[n.key]['train_clips_per_s']:9.3g} train clips/s  "
                f"{_duration(seconds[n.key])} per trial × {n.trials}"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """What starch_estimate.json holds (the report compares it with the trials' time)."""
        return {
            "source": self.source,
            "epochs": self.epochs,
            "sizes": asdict(self.sizes) if self.sizes else None,
            "concurrency": self.concurrency,
            "devices_per_trial": self.devices_per_trial,
            "device": self.device,
            "total_gflops": self.total_gflops(),
            "wall_s": self.wall_seconds(),
            "device_hours": self.device_hours(),
            "networks": [
                {**asdict(n), **self.speeds.get(n.key, {}), "trial_s": self.trial_seconds().get(n.key)}
                for n in self.networks
            ],
        }


@dataclass(frozen=True)
class _Recipe:
    """The one field of trainers.Recipe that predict_seconds reads."""

    eval_every: int


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
