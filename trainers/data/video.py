"""Video readers: open a file, decode only the frames a clip needs, resize, return uint8.

Three backends behind one interface, chosen by `data.decoder` (see DECODERS):

    decord      the default: decord 0.6, index-based `get_batch` (fastest here; unmaintained since 2021)
    torchcodec  PyTorch's decoder, on the system's FFmpeg libraries (`pip install 'starch[torchcodec]'`)
    pyav        PyAV, with the FFmpeg its wheel bundles (already a starch dependency)

    with open_video("v.avi", resize=(128, 171), decoder="pyav") as reader:
        reader.num_frames, reader.fps
        frames = reader.get_frames([0, 2, 4, 6])   # (4, 128, 171, 3) uint8

Modelled on PyTorchVideo's `encoded_video_decord.py` / `encoded_video_pyav.py`. `VideoReader` does
what must not differ between backends: a missing or empty file, an index outside the video, a
wrong shape, and every decoder failure become `VideoDecodeError(path, reason)`; a subclass only
opens, counts and decodes. decord's known failure modes shaped the rules:

- open the reader INSIDE the process that decodes (a reader created in a parent and inherited by
  forked workers deadlocks them, decord #294): the loader only opens readers in its decode child
  (`trainers.data.decode_process`);
- decode only the needed indices, never the whole video, then `seek(0)`: without it decord's
  internal buffers grow from clip to clip (decord #208, #197);
- no decord "fault tolerance": it silently repeats the last good frame, so a broken video would
  train with frozen clips;
- a corrupt stream can still abort the process from C++ (#25) or hang (#269): that cannot be
  caught here, which is why readers run in a disposable child process.
"""

from __future__ import annotations

import bisect
import importlib.util
import os
import re
from typing import Sequence

import numpy as np

DEFAULT_DECODER = "decord"
# data.decoder value → (the module it imports, how to install it)
DECODERS = {
    "decord": ("decord", "pip install decord  (a starch dependency)"),
    "torchcodec": (
        "torchcodec",
        "pip install 'starch[torchcodec]', and FFmpeg's shared libraries (apt-get install ffmpeg)",
    ),
    "pyav": ("av", "pip install av  (a starch dependency)"),
}


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded; `reason` is the decoder's own explanation."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across processes with both fields
        return (VideoDecodeError, (self.path, self.reason))


def check_decoder(name: str) -> None:
    """ValueError naming the valid values, or the install step, if `name` cannot be used here.
    Cheap (no import): run it where the data config is validated, before any work."""
    if name not in DECODERS:
        raise ValueError(f"decoder must be one of {list(DECODERS)}, got {name!r}")
    module, install = DECODERS[name]
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"decoder {name!r} needs the Python package {module!r}, not installed: {install}")


def open_video(
    path: str | os.PathLike,
    *,
    resize: tuple[int, int] | None = None,
    decoder: str = DEFAULT_DECODER,
    num_threads: int = 1,
) -> VideoReader:
    """An open reader of `path` with the chosen backend (a VideoDecodeError if it cannot be opened)."""
    if decoder not in _READERS:
        raise ValueError(f"decoder must be one of {list(_READERS)}, got {decoder!r}")
    return _READERS[decoder](path, resize=resize, num_threads=num_threads)


class VideoReader:
    """One open video. Create it in the process that decodes; call `close()` (or use `with`).

    resize: (H, W) every returned frame is scaled to (bilinear), or None for the native size.
    Aspect ratio is not preserved: the papers resize 320×240 UCF101 to 171×128.
    Subclasses set `num_frames` and `fps` in `_open` and implement `_decode(indices)`.
    """

    name = "?"

    def __init__(self, path: str | os.PathLike, *, resize: tuple[int, int] | None = None, num_threads: int = 1):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise VideoDecodeError(self.path, "no such file")
        if os.path.getsize(self.path) == 0:
            raise VideoDecodeError(self.path, "empty file (0 bytes)")
        self.resize = tuple(resize) if resize is not None else None
        self._num_threads = num_threads
        self.num_frames, self.fps = 0, 0.0
        try:
            self._open()
        except VideoDecodeError:
            raise
        except Exception as exc:  # each library raises its own types, with the FFmpeg message
            raise VideoDecodeError(self.path, _reason(exc, self.path)) from None
        if self.num_frames <= 0:
            raise VideoDecodeError(self.path, "no video frames")

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Decode exactly these frame indices → uint8 (T, H, W, 3)."""
        indices = [int(i) for i in indices]
        bad = [i for i in indices if not 0 <= i < self.num_frames]
        if bad:
            raise VideoDecodeError(self.path, f"frame index {bad[0]} outside 0..{self.num_frames - 1}")
        try:
            frames = self._decode(indices)
        except VideoDecodeError:
            raise
        except Exception as exc:
            raise VideoDecodeError(self.path, _reason(exc, self.path)) from None
        if frames.shape[0] != len(indices) or frames.ndim != 4 or frames.shape[-1] != 3:
            raise VideoDecodeError(self.path, f"decoder returned shape {frames.shape} for {len(indices)} frames")
        return frames

    def iter_chunks(self, chunk: int = 32):
        """Yield the whole video as consecutive uint8 (t, H, W, 3) chunks (for the frame cache)."""
        for start in range(0, self.num_frames, chunk):
            yield self.get_frames(range(start, min(start + chunk, self.num_frames)))

    def close(self) -> None:
        pass

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what a backend provides
    def _open(self) -> None:
        raise NotImplementedError

    def _decode(self, indices: list[int]) -> np.ndarray:
        raise NotImplementedError


class DecordReader(VideoReader):
    """decord scales inside FFmpeg. decord 0.6 cannot scale some files to some widths (a 44-pixel-wide
    mp4 to 48, 24, 16, … wide: "DECORDArrayCopyFromTo: The size must exactly match"); for those it
    decodes at the native size and scales with Pillow, so a valid resize never turns a video "bad"."""

    name = "decord"

    def _open(self) -> None:
        self._scale = None
        self._reader = self._reader_at(self.resize)
        self.num_frames = len(self._reader)
        self.fps = float(self._reader.get_avg_fps())

    def _reader_at(self, resize: tuple[int, int] | None):
        import decord  # imported lazily: the parent process of a loader never needs it

        decord.logging.set_level(decord.logging.ERROR)
        height, width = resize if resize is not None else (-1, -1)
        return decord.VideoReader(
            self.path, ctx=decord.cpu(0), width=width, height=height, num_threads=self._num_threads
        )

    def _decode(self, indices: list[int]) -> np.ndarray:
        try:
            return self._batch(indices)
        except Exception as exc:
            if self.resize is None or self._scale is not None or "size must exactly match" not in str(exc):
                raise
        self._reader, self._scale = self._reader_at(None), self.resize  # decode native, scale with Pillow
        return self._batch(indices)

    def _batch(self, indices: list[int]) -> np.ndarray:
        frames = self._reader.get_batch(indices).asnumpy()  # (T, H, W, 3)
        self._reader.seek(0)  # decord #208/#197: release decoder buffers between clips
        return frames if self._scale is None else _scaled(frames, self._scale)

    def close(self) -> None:
        self._reader = None


class PyAVReader(VideoReader):
    """PyAV: the packets are demuxed once at open (no decoding) for every frame's timestamp and the
    keyframes; a clip seeks to the keyframe before its first frame and decodes forward."""

    name = "pyav"

    def _open(self) -> None:
        import av

        av.logging.set_level(av.logging.ERROR)
        self._container = av.open(self.path)
        if not self._container.streams.video:
            raise VideoDecodeError(self.path, "no video stream")
        self._stream = stream = self._container.streams.video[0]
        stream.thread_count = self._num_threads
        pts, keys = [], []
        for packet in self._container.demux(stream):
            t = packet.pts if packet.pts is not None else packet.dts
            if t is None or packet.size == 0:  # the demuxer's final flush packet
                continue
            pts.append(t)
            if packet.is_keyframe:
                keys.append(t)
        self._pts, self._keys = sorted(pts), sorted(keys)  # presentation order (B-frames reorder)
        if stream.frames and len(pts) < stream.frames:
            raise VideoDecodeError(
                self.path, f"truncated: the header lists {stream.frames} frames, the file holds {len(pts)}"
            )
        self.num_frames = len(pts)
        self.fps = float(stream.average_rate or stream.guessed_rate or 0)
        self._frames = None  # the running decode generator, and the timestamp it last gave
        self._at = None

    def _decode(self, indices: list[int]) -> np.ndarray:
        wanted = {self._pts[i] for i in indices}
        got: dict[int, np.ndarray] = {}
        for target in sorted(wanted):
            if target in got:
                continue
            key = self._keys[max(bisect.bisect_right(self._keys, target) - 1, 0)] if self._keys else self._pts[0]
            if self._frames is None or self._at is None or self._at >= target or key > self._at:
                self._container.seek(key, stream=self._stream, backward=True, any_frame=False)
                self._frames, self._at = self._container.decode(self._stream), None
            for frame in self._frames:
                self._at = frame.pts if frame.pts is not None else frame.dts
                if self._at in wanted:
                    got[self._at] = self._rgb(frame)
                if self._at is not None and self._at >= target:
                    break
            if target not in got:
                self._frames = None
                raise VideoDecodeError(self.path, f"the stream ended before frame {self._pts.index(target)}")
        return np.stack([got[self._pts[i]] for i in indices])

    def _rgb(self, frame) -> np.ndarray:
        if self.resize is None:
            return frame.to_ndarray(format="rgb24")
        height, width = self.resize
        return frame.reformat(width=width, height=height, format="rgb24", interpolation="BILINEAR").to_ndarray()

    def close(self) -> None:
        if getattr(self, "_container", None) is not None:
            self._container.close()
            self._container = None


class TorchCodecReader(VideoReader):
    """torchcodec in exact seek mode (one scan at open gives the true frame count and timestamps);
    its Resize transform scales inside FFmpeg's filter graph (bilinear)."""

    name = "torchcodec"

    def _open(self) -> None:
        from torchcodec.decoders import VideoDecoder
        from torchcodec.transforms import Resize

        transforms = [Resize(size=self.resize)] if self.resize is not None else None
        self._decoder = VideoDecoder(
            self.path,
            seek_mode="exact",
            dimension_order="NHWC",
            num_ffmpeg_threads=self._num_threads,
            transforms=transforms,
        )
        meta = self._decoder.metadata
        header, content = meta.num_frames_from_header, meta.num_frames_from_content
        if header and content is not None and content < header:
            raise VideoDecodeError(self.path, f"truncated: the header lists {header} frames, the file holds {content}")
        self.num_frames = int(meta.num_frames or 0)
        self.fps = float(meta.average_fps or 0)

    def _decode(self, indices: list[int]) -> np.ndarray:
        return self._decoder.get_frames_at(indices).data.numpy()  # (T, H, W, 3) uint8

    def close(self) -> None:
        self._decoder = None


_READERS: dict[str, type[VideoReader]] = {r.name: r for r in (DecordReader, TorchCodecReader, PyAVReader)}
assert set(_READERS) == set(DECODERS)


def _scaled(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    height, width = size
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in frames])


_DECORD_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+?:\d+: ")
_TORCHCODEC_PREFIX = re.compile(r"^\w+, \S+\.cpp:\d+, ")
_ERRNO_PREFIX = re.compile(r"^\[Errno -?\d+\] ")


def _reason(exc: BaseException, path: str = "") -> str:
    """The gist of a decoder's message, without what VideoDecodeError already says (the path) or
    what helps no one (decord's `[12:00:00] /src/file.cc:123:` prefixes and stack dumps, torchcodec's
    `Class, file.cpp:52,` prefix, PyAV's `[Errno 1094995529]`)."""
    text = _DECORD_PREFIX.sub("", str(exc)).strip()
    if path:
        text = text.replace(f": '{path}'", "").replace(f"file: {path} ", "file: ")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Stack trace", "[bt]"))]
    lines = [_ERRNO_PREFIX.sub("", _TORCHCODEC_PREFIX.sub("", line)) for line in lines]
    return (lines[0] if lines else type(exc).__name__)[:300]
