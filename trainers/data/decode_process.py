"""The decode process: a disposable child interpreter that opens video readers for its owner.

decord can abort the whole process from C++ on a corrupt H.264 stream (#25) or block forever in
get_batch (#269); neither can be caught in Python. So the loader never decodes in its own process:
each process that needs frames owns one `DecodeProcess`, a fresh interpreter (no inherited decoder
state, decord #294) that runs a `DecodeServer` over a pipe. A request that takes longer than its
timeout gets the child SIGKILLed; a child that dies is noticed by EOF on the pipe. Both become a
VideoDecodeError for that one video, and the next request starts a new child (~0.15 s).

    DataLoader worker ──request {op, path, …}──► decode child: DecodeServer (one open reader)
    (DecodeProcess)   ◄──{frames} / {error}────

Requests (`DecodeServer.op_*`): "clip" (decode the indices `trainers.data.clips.pick_clip`
chooses), "cache" (build a `trainers.data.cache` entry), "check" (open + decode first/middle/last
frame, for `starch data check`), "ping".

What the child runs is named by an import path ("module:Class", default `SERVER`): a test gives a
DecodeServer subclass that aborts or hangs on chosen files to exercise the recovery.
"""

from __future__ import annotations

import importlib
import os
import re

import numpy as np

from trainers.data.cache import FrameCache
from trainers.data.clips import pick_clip
from trainers.data.video import _DECORD_PREFIX, DECODERS, DEFAULT_DECODER, VideoDecodeError, VideoReader, open_video

SERVER = "trainers.data.decode_process:DecodeServer"
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds trainers/
START_TIMEOUT_S = 120.0  # a child's start (interpreter + decoder library; torchcodec imports torch)
_STDERR_TAIL = 600  # characters of the child's stderr quoted when it dies


class DecoderUnavailable(RuntimeError):
    """The chosen decoder cannot load in the decode process (a setup error, not a bad video: it is
    raised through the loader instead of marking every video unusable)."""


class DecodeProcess:
    """A disposable decode child owned by the calling process (create it in that process).

    decoder: the backend the child's readers use (`trainers.data.video.DECODERS`).
    server: "module:Class" of the DecodeServer the child runs; None = `SERVER` when the child starts.
    """

    def __init__(self, *, timeout_s: float = 30.0, decoder: str = DEFAULT_DECODER, server: str | None = None):
        self.timeout_s = float(timeout_s)
        self.decoder, self.server = decoder, server
        self._proc = None
        self._owner_pid = os.getpid()
        self.restarts = 0

    # -- lifecycle
    def _start(self, path: str) -> None:
        """Start the child and wait for it to say it is ready, so that a request's timeout counts
        decoding only, not the child's imports (seconds for torch on a loaded machine)."""
        import subprocess
        import sys
        import tempfile
        import weakref
        from multiprocessing.connection import Connection

        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        self._errfile = tempfile.TemporaryFile(prefix="starch-decode-", suffix=".log")
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        server = self.server or SERVER
        # the child imports this very copy of starch, whatever its cwd (a Ray trial's is its trial folder)
        code = (
            f"import sys; root = {_ROOT!r}; root in sys.path or sys.path.insert(0, root); "
            f"from trainers.data.decode_process import serve; serve({req_r}, {rep_w}, {server!r}, {self.decoder!r})"
        )
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code],
            pass_fds=(req_r, rep_w),
            stdin=subprocess.DEVNULL,
            stdout=self._errfile,
            stderr=self._errfile,  # a regular file: DecodeServer quotes what FFmpeg wrote per request
            env=env,
        )
        os.close(req_r)
        os.close(rep_w)
        self._send, self._recv = Connection(req_w, readable=False), Connection(rep_r, writable=False)
        self._finalizer = weakref.finalize(self, _kill, self._proc, self._send, self._recv, self._errfile)
        if not self._recv.poll(START_TIMEOUT_S):
            self.close()
            raise VideoDecodeError(path, f"decoder process did not start in {START_TIMEOUT_S:g} s")
        try:
            hello = self._recv.recv()
        except (EOFError, OSError):
            raise VideoDecodeError(path, self._death_reason()) from None
        if "unavailable" in hello:
            self.close()
            raise DecoderUnavailable(hello["unavailable"])

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
                self._start(path)
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


# ------------------------------------------------------------------------------ the child's side


class DecodeServer:
    """Runs in the decode child: answers one request at a time (`handle`). It keeps the last reader
    open, since evaluation asks for 10 clips of one video in a row."""

    def __init__(self, *, decoder: str = DEFAULT_DECODER):
        self.decoder = decoder
        self._key: tuple | None = None  # (path, resize) of the open reader
        self._reader: VideoReader | None = None

    def load(self) -> None:
        """Import the decoder's library (once, when the child starts)."""
        importlib.import_module(DECODERS[self.decoder][0])

    def handle(self, req: dict) -> dict:
        """The reply to one request: its result, or {"error": reason} (this video's failure)."""
        mark = _stderr_mark()
        try:
            return getattr(self, f"op_{req['op']}")(req)
        except VideoDecodeError as exc:
            self._forget()
            return {"error": _with_native_log(exc.reason, mark)}
        except Exception as exc:  # anything else is still this video's failure, not the child's
            self._forget()
            return {"error": _with_native_log(f"{type(exc).__name__}: {exc}", mark)}

    def op_clip(self, req: dict) -> dict:
        reader = self._reader_for(req["path"], req.get("resize"))
        indices = pick_clip(reader.num_frames, **req["clip"])
        if indices is None:
            return {"short": reader.num_frames}
        return {"frames": reader.get_frames(indices), "num_frames": reader.num_frames}

    def op_cache(self, req: dict) -> dict:
        try:
            cache = FrameCache(req["cache_root"], resize=req.get("resize"), decoder=self.decoder)
            entry = cache.build(req["path"])
        except OSError as exc:  # the cache disk, not the video: the caller decodes directly instead
            return {"cache_error": f"{type(exc).__name__}: {exc}"}
        return {"entry": str(entry)}

    def op_frames(self, req: dict) -> dict:
        """Every frame of the video, uint8 (N, H, W, 3), decoded in chunks (for trainers.data.shards)."""
        with open_video(req["path"], resize=req.get("resize"), decoder=self.decoder) as reader:
            return {"frames": np.concatenate(list(reader.iter_chunks()))}

    def op_check(self, req: dict) -> dict:
        """Open, then decode the first, middle and last frame; with a clip `span`, refuse a video
        shorter than one clip and decode every frame of the last clip a trial may read."""
        with open_video(req["path"], resize=req.get("resize"), decoder=self.decoder) as reader:
            n, span = reader.num_frames, req.get("span")
            if span and n < span:
                raise VideoDecodeError(
                    req["path"], f"short: {n} frames, one clip needs {span} (usable only with data.short_video: loop)"
                )
            frames = reader.get_frames(sorted({0, n // 2, n - 1}))
            if span:
                reader.get_frames(range(n - span, n))
            return {"num_frames": n, "fps": reader.fps, "height": int(frames.shape[1]), "width": int(frames.shape[2])}

    def op_ping(self, req: dict) -> dict:
        return {"pid": os.getpid(), "module": os.path.abspath(__file__)}  # which copy of starch runs here

    def _reader_for(self, path: str, resize) -> VideoReader:
        key = (path, tuple(resize) if resize else None)
        if self._key != key:
            self._forget()
            self._reader = open_video(path, resize=key[1], decoder=self.decoder)
            self._key = key
        return self._reader

    def _forget(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._key, self._reader = None, None


def serve(req_fd: int, rep_fd: int, server: str = SERVER, decoder: str = DEFAULT_DECODER) -> None:
    """The decode child's main loop: one request at a time until the parent closes the pipe."""
    from multiprocessing.connection import Connection

    _die_with_parent()
    module, _, name = server.partition(":")
    handler = getattr(importlib.import_module(module), name)(decoder=decoder)
    recv, send = Connection(req_fd, writable=False), Connection(rep_fd, readable=False)
    try:  # load the decoder library now: the parent's timeouts then count decoding only
        handler.load()
        send.send({"ready": os.getpid()})
    except Exception as exc:  # e.g. torchcodec without FFmpeg's shared libraries
        library, install = DECODERS[decoder]
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
        send.send({"unavailable": f"data.decoder {decoder!r}: {library!r} does not load ({why}); {install}"})
        return
    while True:
        try:
            req = recv.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        reply = handler.handle(req)
        try:
            send.send(reply)
        except (BrokenPipeError, OSError):
            return


def _die_with_parent() -> None:
    """Linux: SIGKILL this child when its parent dies, so a hung decode never outlives the run."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _stderr_mark() -> int:
    """Current size of the child's stderr file (a regular file, see DecodeProcess._start); the file
    is emptied when it passes 1 MB so long runs do not fill the disk."""
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
    """Append what FFmpeg / the decoder wrote to stderr during this request (e.g. 'moov atom not found')."""
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
    if reason.startswith("Error reading "):  # decord's generic open failure: FFmpeg says why
        return "; ".join(lines[:4])[:500]
    return f"{reason} [{'; '.join(lines[:4])}]"[:500]
