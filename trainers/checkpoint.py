"""Per-epoch checkpoints: model, optimiser, grad scaler, RNG states, epoch, best metric, data stats.

Saved with torch.save and loaded with `torch.load(weights_only=True)`: a checkpoint from an
untrusted run folder cannot execute code. Writes are atomic (temp file + rename), so a process
killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch

FILENAME = "checkpoint.pt"


def capture_rng() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    # a trial restored on a node with another number of visible GPUs keeps the fresh CUDA streams
    # (exact resume is a CPU guarantee; cuDNN is not deterministic anyway)
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def save(directory: str | os.PathLike, state: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILENAME
    tmp = directory / f".{FILENAME}.{os.getpid()}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load(directory_or_file: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory_or_file)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file: say which and why
        raise ValueError(f"checkpoint {str(path)!r} cannot be loaded safely: {exc}") from exc
