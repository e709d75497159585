"""Where a trial's time goes: seconds per phase, added up over an epoch.

    timer = PhaseTimer(device)
    timer.lap("data")        # the time since the previous lap (or start) is the data phase's
    …  timer.lap("forward"); timer.lap("backward"); …
    timer.seconds()          # {"data": 1.2, "forward": 3.4, …}; reads the GPU's clock once

A lap closes the interval since the previous one. On the CPU the intervals are wall-clock time
(time.perf_counter). On CUDA the work is asynchronous, so the host's clock would show the launch
of a kernel, not its run: each lap records a CUDA event on the current stream instead, and an
interval is the stream's time between two events, read once when `seconds()` is called (one
synchronisation per epoch). A host-side wait (the next batch from the loader) then shows as the
GPU's idle time before the copy of that batch starts: zero when the loader keeps ahead of the GPU,
the starvation when it does not. Phases that end with a host synchronisation anyway (evaluation,
the epoch's report and checkpoint) are timed on the host with `host()`.

The phases a trial records (`PHASES`, in this order in every epoch's record as `phase_<name>_s`):
    setup      model, loaders, the peak-FLOP probe: from the trial's start to its first epoch (epoch 1 only)
    data       waiting for the next batch from the loader (reading, cropping, normalising)
    h2d        the batch and its labels onto the device, in the model's memory format (on CUDA the
               copy runs on a side stream during the previous step, trainers.prefetch, so this is
               ~0 and a copy the step had to wait for shows in data)
    forward    the model's forward pass and the loss
    backward   loss.backward()
    optimizer  gradient clipping, the optimiser's step, zero_grad; the periodic loss check
    eval       clip@1 and video@1 evaluation
    report     the previous epoch's report and checkpoint (Ray Tune's report included), the LR step
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch

PHASES = ("setup", "data", "h2d", "forward", "backward", "optimizer", "eval", "report")


def record_key(phase: str) -> str:
    """The record field of a phase: `phase_data_s`, …"""
    return f"phase_{phase}_s"


class PhaseTimer:
    """Seconds per phase since construction (see the module's docstring)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._host: dict[str, float] = defaultdict(float)
        self._events: list[tuple[str, object, object]] = []
        self._last = time.perf_counter()
        self._last_event = self._event() if self.cuda else None

    def _event(self):
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def lap(self, phase: str) -> None:
        """The interval since the previous lap belongs to `phase`."""
        if self.cuda:
            event = self._event()
            self._events.append((phase, self._last_event, event))
            self._last_event = event
        else:
            now = time.perf_counter()
            self._host[phase] += now - self._last
            self._last = now

    def restart(self) -> None:
        """Forget the interval since the last lap (time that belongs to no phase of this timer)."""
        self._last = time.perf_counter()
        if self.cuda:
            self._last_event = self._event()

    def host(self, phase: str, seconds: float) -> None:
        """Add host-timed seconds to `phase` (evaluation, reporting)."""
        self._host[phase] += seconds

    def seconds(self) -> dict[str, float]:
        totals = dict(self._host)
        if self._events:
            self._events[-1][2].synchronize()
            for phase, start, end in self._events:
                totals[phase] = totals.get(phase, 0.0) + start.elapsed_time(end) / 1e3
            self._events.clear()
        return totals
