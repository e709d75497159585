"""A thin decord reader: open a file, decode only the frames a clip needs, resize, return uint8.

Modelled on PyTorchVideo's `encoded_video_decord.py`, with decord's known failure modes in mind:

- open the reader INSIDE the process that decodes (a reader created in a parent and inherited by
  forked workers deadlocks them, decord #294) — `trainers.loader` only calls this from its decode
  child process;
- `get_batch` only the needed indices, never the whole video, then `seek(0)`: without it decord's
  internal buffers grow from clip to clip (decord #208, #197);
- no decord "fault tolerance": it silently repeats the last good frame, so a broken video would
  train with frozen clips. Every failure is re-raised as `VideoDecodeError(path, reason)`;
- a corrupt stream can still abort the process from C++ (#25) or hang (#269): that cannot be caught
  here, which is why the loader runs this module in a disposable child process.

    frames = read_frames("v.avi", [0, 2, 4, 6], resize=(128, 171))   # (4, 128, 171, 3) uint8
    num_frames, fps, height, width = probe("v.avi")
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple, Sequence

import numpy as np


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded; `reason` is the decoder's own explanation."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across processes with both fields
        return (VideoDecodeError, (self.path, self.reason))


class VideoInfo(NamedTuple):
    num_frames: int
    fps: float
    height: int
    width: int


def _decord():
    import decord  # imported lazily: the parent process of a loader never needs it

    decord.logging.set_level(decord.logging.ERROR)
    return decord


class VideoReader:
    """One open video. Create it in the process that decodes; call `close()` (or use `with`).

    resize: (H, W) every returned frame is scaled to (by ffmpeg inside decord), or None for the
    native size. Aspect ratio is not preserved: the papers resize 320×240 UCF101 to 171×128.
    decord 0.6 cannot scale some files to some widths (a 44-pixel-wide mp4 to 48, 24, 16, … wide:
    "DECORDArrayCopyFromTo: The size must exactly match"); for those the reader decodes at the
    native size and scales with Pillow (bilinear), so a valid resize never turns a video into "bad".
    """

    def __init__(self, path: str | os.PathLike, *, resize: tuple[int, int] | None = None, num_threads: int = 1):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise VideoDecodeError(self.path, "no such file")
        if os.path.getsize(self.path) == 0:
            raise VideoDecodeError(self.path, "empty file (0 bytes)")
        self.resize, self._num_threads, self._scale = resize, num_threads, None
        try:
            self._reader = self._open(resize)
            self.num_frames = len(self._reader)
            self.fps = float(self._reader.get_avg_fps())
        except Exception as exc:  # decord raises RuntimeError / DECORDError with the C++ message
            raise VideoDecodeError(self.path, _reason(exc)) from None
        if self.num_frames <= 0:
            raise VideoDecodeError(self.path, "no video frames")

    def _open(self, resize: tuple[int, int] | None):
        decord = _decord()
        height, width = resize if resize is not None else (-1, -1)
        return decord.VideoReader(
            self.path, ctx=decord.cpu(0), width=width, height=height, num_threads=self._num_threads
        )

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Decode exactly these frame indices → uint8 (T, H, W, 3)."""
        indices = [int(i) for i in indices]
        bad = [i for i in indices if not 0 <= i < self.num_frames]
        if bad:
            raise VideoDecodeError(self.path, f"frame index {bad[0]} outside 0..{self.num_frames - 1}")
        try:
            frames = self._batch(indices)
        except Exception as exc:
            if self.resize is None or self._scale is not None or "size must exactly match" not in str(exc):
                raise VideoDecodeError(self.path, _reason(exc)) from None
            try:  # decord cannot scale this file to this size: decode native, scale with Pillow
                self._reader, self._scale = self._open(None), self.resize
                frames = self._batch(indices)
            except Exception as exc2:
                raise VideoDecodeError(self.path, _reason(exc2)) from None
        if frames.shape[0] != len(indices) or frames.ndim != 4 or frames.shape[-1] != 3:
            raise VideoDecodeError(self.path, f"decoder returned shape {frames.shape} for {len(indices)} frames")
        return frames

    def _batch(self, indices: list[int]) -> np.ndarray:
        frames = self._reader.get_batch(indices).asnumpy()  # (T, H, W, 3)
        self._reader.seek(0)  # decord #208/#197: release decoder buffers between clips
        return frames if self._scale is None else _scaled(frames, self._scale)

    def iter_chunks(self, chunk: int = 32):
        """Yield the whole video as consecutive uint8 (t, H, W, 3) chunks (for the frame cache)."""
        for start in range(0, self.num_frames, chunk):
            yield self.get_frames(range(start, min(start + chunk, self.num_frames)))

    def close(self) -> None:
        self._reader = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _scaled(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    height, width = size
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in frames])


def read_frames(
    path: str | os.PathLike, indices: Sequence[int] | np.ndarray, *, resize: tuple[int, int] | None = None
) -> np.ndarray:
    """Open, decode `indices`, close: uint8 (T, H, W, 3)."""
    with VideoReader(path, resize=resize) as reader:
        return reader.get_frames(indices)


def probe(path: str | os.PathLike) -> VideoInfo:
    """(num_frames, fps, height, width) as decord sees them (decodes one frame for the size)."""
    with VideoReader(path) as reader:
        height, width = reader.get_frames([0]).shape[1:3]
        return VideoInfo(reader.num_frames, reader.fps, int(height), int(width))


_DECORD_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+?:\d+: ")


def _reason(exc: BaseException) -> str:
    """decord's messages carry `[12:00:00] /src/file.cc:123:` prefixes and stack dumps: keep the gist."""
    text = _DECORD_PREFIX.sub("", str(exc)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Stack trace", "[bt]"))]
    return (lines[0] if lines else type(exc).__name__)[:300]


# ------------------------------------------------------------------ decoding in a child process
#
# decord can abort the whole process from C++ on a corrupt H.264 stream (#25) or block forever in
# get_batch (#269); neither can be caught in Python. So the loader never decodes in its own process:
# each process that needs frames owns one `DecodeProcess`, a fresh interpreter (no inherited decord
# state, #294) that serves requests over a pipe. A request that takes longer than its timeout gets
# the child SIGKILLed; a child that dies is noticed by EOF on the pipe. Both become a
# VideoDecodeError for that one video, and the next request starts a new child.
#
#     DataLoader worker ──request {op, path, …}──► decode child (decord, one open reader)
#                       ◄──{frames} / {error}────
#
# Requests: "clip" (decode the indices `trainers.clips.pick_clip` chooses), "cache" (build a
# trainers.cache entry), "frames" (a whole video, for trainers.shards), "check" (probe + decode
# first/middle/last frame, for `starch data check`).
# Test hook: STARCH_DECODE_FAULT="abort:<substr>,hang:<substr>" makes the child abort or hang on
# any path containing <substr>, to test the recovery without a real crashing file.

_STDERR_TAIL = 600  # characters of the child's stderr quoted when it dies


class DecodeProcess:
    """A disposable decode child owned by the calling process (create it in that process)."""

    def __init__(self, *, timeout_s: float = 30.0):
        self.timeout_s = float(timeout_s)
        self._proc = None
        self._owner_pid = os.getpid()
        self.restarts = 0

    # -- lifecycle
    def _start(self) -> None:
        import subprocess
        import sys
        import tempfile
        import weakref
        from multiprocessing.connection import Connection

        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        self._errfile = tempfile.TemporaryFile(prefix="starch-decode-", suffix=".log")
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        code = f"import sys; from trainers.video import _child_main; _child_main({req_r}, {rep_w})"
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code],
            pass_fds=(req_r, rep_w),
            stdin=subprocess.DEVNULL,
            stdout=self._errfile,
            stderr=self._errfile,
            env=env,
        )
        os.close(req_r)
        os.close(rep_w)
        self._send, self._recv = Connection(req_w, readable=False), Connection(rep_r, writable=False)
        self._finalizer = weakref.finalize(self, _kill, self._proc, self._send, self._recv, self._errfile)

    def close(self) -> None:
        if self._proc is not None:
            self._finalizer()
            self._proc = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- requests
    def request(self, req: dict, *, timeout_s: float | None = None) -> dict:
        """Send one request, wait for its reply; VideoDecodeError(req['path'], …) on decode error,
        death or timeout (the child is then replaced on the next request)."""
        if os.getpid() != self._owner_pid:  # inherited through fork: never share a child
            self._proc, self._owner_pid = None, os.getpid()
        path = req.get("path", "?")
        timeout = self.timeout_s if timeout_s is None else timeout_s
        for attempt in (0, 1):
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    self.close()
                    self.restarts += 1
                self._start()
            try:
                self._send.send(req)
                break
            except (BrokenPipeError, OSError):  # the child had died between requests: retry once
                self.close()
                if attempt:
                    raise VideoDecodeError(path, "decoder process could not be started") from None
        if not self._recv.poll(timeout):
            self.close()
            self.restarts += 1
            raise VideoDecodeError(path, f"decode timed out after {timeout:g} s (decoder process killed)")
        try:
            reply = self._recv.recv()
        except (EOFError, OSError):
            raise VideoDecodeError(path, self._death_reason()) from None
        if "error" in reply:
            raise VideoDecodeError(path, reply["error"])
        return reply

    def _death_reason(self) -> str:
        import signal

        try:
            code = self._proc.wait(timeout=5)
        except Exception:
            code = None
        how = (
            f"killed by {signal.Signals(-code).name}"
            if code is not None and code < 0 and -code in signal.valid_signals()
            else f"exit code {code}"
        )
        tail = ""
        try:
            self._errfile.seek(0)
            text = self._errfile.read().decode(errors="replace")
            tail = " ".join(text.split())[-_STDERR_TAIL:]
        except (OSError, ValueError):
            pass
        self.close()
        self.restarts += 1
        return f"decoder process died ({how})" + (f": {tail}" if tail else "")


def _kill(proc, send, recv, errfile) -> None:
    for conn in (send, recv):
        try:
            conn.close()
        except OSError:
            pass
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=5)
    except Exception:
        pass
    errfile.close()


def _child_main(req_fd: int, rep_fd: int) -> None:
    """The decode child's loop: one request at a time until the parent closes the pipe."""
    from multiprocessing.connection import Connection

    _die_with_parent()
    recv, send = Connection(req_fd, writable=False), Connection(rep_fd, readable=False)
    faults = _parse_faults(os.environ.get("STARCH_DECODE_FAULT", ""))
    open_reader: list = [None, None]  # (key, VideoReader): eval asks for 10 clips of one video in a row
    while True:
        try:
            req = recv.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        mark = _stderr_mark()
        try:
            for kind, needle in faults:
                if needle in req.get("path", ""):
                    if kind == "abort":
                        os.abort()
                    if kind == "hang":
                        import time

                        time.sleep(10**6)
            reply = _HANDLERS[req["op"]](req, open_reader)
        except VideoDecodeError as exc:
            open_reader[:] = [None, None]
            reply = {"error": _with_native_log(exc.reason, mark)}
        except Exception as exc:  # anything else is still this video's failure, not the child's
            open_reader[:] = [None, None]
            reply = {"error": _with_native_log(f"{type(exc).__name__}: {exc}", mark)}
        try:
            send.send(reply)
        except (BrokenPipeError, OSError):
            return


def _reader_for(req: dict, open_reader: list) -> VideoReader:
    key = (req["path"], tuple(req["resize"]) if req.get("resize") else None)
    if open_reader[0] != key:
        open_reader[:] = [None, None]
        open_reader[:] = [key, VideoReader(req["path"], resize=key[1])]
    return open_reader[1]


def _op_clip(req: dict, open_reader: list) -> dict:
    from trainers.clips import pick_clip

    reader = _reader_for(req, open_reader)
    indices = pick_clip(reader.num_frames, **req["clip"])
    if indices is None:
        return {"short": reader.num_frames}
    return {"frames": reader.get_frames(indices), "num_frames": reader.num_frames}


def _op_cache(req: dict, open_reader: list) -> dict:
    from trainers.cache import FrameCache

    try:
        entry = FrameCache(req["cache_root"], resize=req.get("resize")).build(req["path"])
    except OSError as exc:  # the cache disk, not the video: the caller decodes directly instead
        return {"cache_error": f"{type(exc).__name__}: {exc}"}
    return {"entry": str(entry)}


def _op_frames(req: dict, open_reader: list) -> dict:
    """Every frame of the video, uint8 (N, H, W, 3), decoded in chunks (for trainers.shards)."""
    with VideoReader(req["path"], resize=req.get("resize")) as reader:
        return {"frames": np.concatenate(list(reader.iter_chunks()))}


def _op_check(req: dict, open_reader: list) -> dict:
    """Open, then decode the first, middle and last frame; with a clip `span`, refuse a video
    shorter than one clip and decode every frame of the last clip a trial may read."""
    with VideoReader(req["path"], resize=req.get("resize")) as reader:
        n, span = reader.num_frames, req.get("span")
        if span and n < span:
            raise VideoDecodeError(
                req["path"], f"short: {n} frames, one clip needs {span} (usable only with data.short_video: loop)"
            )
        frames = reader.get_frames(sorted({0, n // 2, n - 1}))
        if span:
            reader.get_frames(range(n - span, n))
        return {"num_frames": n, "fps": reader.fps, "height": int(frames.shape[1]), "width": int(frames.shape[2])}


_HANDLERS = {
    "clip": _op_clip,
    "cache": _op_cache,
    "frames": _op_frames,
    "check": _op_check,
    "ping": lambda req, open_reader: {"pid": os.getpid()},
}


def _parse_faults(text: str) -> list[tuple[str, str]]:
    return [tuple(item.split(":", 1)) for item in text.split(",") if ":" in item]


def _die_with_parent() -> None:
    """Linux: SIGKILL this child when its parent dies, so a hung decode never outlives the run."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _stderr_mark() -> int:
    """Current size of the child's stderr file (it is a regular file, see DecodeProcess._start);
    the file is emptied when it passes 1 MB so long runs do not fill the disk."""
    try:
        size = os.fstat(2).st_size
        if size > 2**20:
            os.ftruncate(2, 0)
            os.lseek(2, 0, os.SEEK_SET)
            size = 0
        return size
    except OSError:
        return -1


def _with_native_log(reason: str, mark: int) -> str:
    """Append what ffmpeg/decord wrote to stderr during this request (e.g. 'moov atom not found')."""
    if mark < 0:
        return reason
    try:
        size = os.fstat(2).st_size
        text = os.pread(2, min(size - mark, 4096), mark).decode(errors="replace") if size > mark else ""
    except OSError:
        return reason
    lines = []
    for line in text.splitlines():
        line = _DECORD_PREFIX.sub("", re.sub(r"^\[[\w,]+ @ 0x[0-9a-f]+\] ", "", line.strip())).strip()
        line = re.sub(r"^ERROR opening: .*?, ", "", line)  # decord repeats the path we already name
        if line and line not in lines and line not in reason:
            lines.append(line)
    if not lines:
        return reason
    if reason.startswith("Error reading "):  # decord's generic open failure: ffmpeg says why
        return "; ".join(lines[:4])[:500]
    return f"{reason} [{'; '.join(lines[:4])}]"[:500]
