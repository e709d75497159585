"""Tiny real video files (and broken ones) for the trainers tests, written with PyAV.

Every good video encodes its frame index in its brightness: frame i is a flat grey frame of level
`frame_level(i)`, so a test can check WHICH frames a reader returned, not only how many:
`decoded_index(frame)` inverts it (H.264/MPEG-4 keep flat frames within ±2 grey levels, also after resizing).

    write_video(path, frames=32, size=(32, 44), fps=25, codec="h264")   # mp4 / H.264
    write_video(path.with_suffix(".avi"), codec="mpeg4")                  # avi / MPEG-4 part 2
    write_zero_bytes(path); write_random_bytes(path); write_truncated(path, source)

`DECODER_PARAMS` parametrizes a test over every video backend (data.decoder) that loads here.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

LEVEL_BASE, LEVEL_STEP = 18, 5  # frame i has grey level 18 + 5*i (mod the usable range)
_LEVELS = (235 - LEVEL_BASE) // LEVEL_STEP  # distinct levels before wrapping


def frame_level(index: int) -> int:
    return LEVEL_BASE + LEVEL_STEP * (index % _LEVELS)


def decoded_index(frame: np.ndarray) -> int:
    """The frame index (mod 43) that a decoded (H, W, 3) frame of `write_video` encodes."""
    return int(round((float(frame.mean()) - LEVEL_BASE) / LEVEL_STEP)) % _LEVELS


def write_video(
    path: str | os.PathLike,
    *,
    frames: int = 32,
    size: tuple[int, int] = (32, 44),
    fps: int = 25,
    codec: str | None = None,
    gop: int = 12,
) -> Path:
    """Write a real video of `frames` flat grey frames of (H, W) = size; codec from the suffix
    (.mp4 → h264, .avi → mpeg4) unless given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or ("mpeg4" if path.suffix == ".avi" else "h264")
    height, width = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.gop_size = gop
        if codec == "h264":
            stream.options = {"preset": "ultrafast", "crf": "10", "bf": "0"}
        else:
            stream.bit_rate = 2_000_000
        for i in range(frames):
            image = np.full((height, width, 3), frame_level(i), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_zero_bytes(path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_random_bytes(path: str | os.PathLike, *, size: int = 4096, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def write_truncated(path: str | os.PathLike, *, frames: int = 32, size=(32, 44)) -> Path:
    """A valid video of the same kind (by suffix) cut in half."""
    path = Path(path)
    write_video(path, frames=frames, size=size)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_textured_video(
    path: str | os.PathLike,
    *,
    frames: int = 75,
    size: tuple[int, int] = (240, 320),
    fps: int = 25,
    codec: str | None = None,
    seed: int = 0,
) -> Path:
    """A realistic-to-decode video (UCF101-like when 320×240 avi): a random texture panning 2 px per
    frame plus fresh noise, so the codec cannot skip work the way it does on flat frames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or ("mpeg4" if path.suffix == ".avi" else "h264")
    rng = np.random.default_rng(seed)
    height, width = size
    texture = rng.integers(0, 256, (height // 8 + 1, (width + 2 * frames) // 8 + 1, 3), dtype=np.uint8)
    texture = np.kron(texture, np.ones((8, 8, 1), dtype=np.uint8))  # 8×8 blocks
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.gop_size = 12
        stream.bit_rate = 1_500_000
        for i in range(frames):
            image = texture[:height, 2 * i : 2 * i + width]
            image = np.clip(image.astype(np.int16) + rng.integers(-8, 9, image.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _decoder_params() -> list:
    import importlib

    import pytest

    from trainers.data.video import DECODERS

    params = []
    for name, (module, install) in DECODERS.items():
        try:
            importlib.import_module(module)
            why = ""
        except Exception as exc:  # not installed, or (torchcodec) no FFmpeg shared libraries
            why = f"{module} does not load ({type(exc).__name__}: {str(exc)[:120]}); {install}"
        params.append(pytest.param(name, id=name, marks=pytest.mark.skipif(bool(why), reason=why)))
    return params


DECODER_PARAMS = _decoder_params()
