"""Sharded frame store: every frame of a subset at the training resolution, in memory-mapped shard
files on local or shared disk, built once and read by every trial of a search (`data.cache: shards`).

When: datasets too big for the per-video frame cache (`trainers.data.cache`, off above 4 GiB) —
Kinetics, or any run where decoding every clip would starve the network. A clip is a slice of a
page-cached file, as with the frame cache, but the store has one index for the whole subset, few
large files instead of one per video, and a build that several trials share safely.

Layout (`shard_dir`, default `$STARCH_CACHE/shards` or `~/.cache/starch/shards`):

    <shard_dir>/<key>/store.json             what was stored (readable; not used for reading)
                     /shard-00000.u8         raw uint8 frames of videos 0..63, back to back
                     /shard-00000.json       done marker: per video (path, byte offset, frames,
                                             H, W, crc32, decode error); byte size of the .u8
                     /shard-00000.lock       only while a builder works on the shard
                     /index.npz              the one index readers use (all shards' markers)

    key = sha1(every video's absolute path, size and mtime_ns; resize; videos per shard; version)

So a different resize, an edited or replaced video, or another subset is another store, never
stale data. The store keeps every frame of every video (the frame selection is "all frames"), so
one store serves every clip length, sampling rate and eval-clip count of the search.
Disk size: sum over videos of frames × H × W × 3 bytes (UCF101 train split 1 at 128×171:
9.5k videos × ~187 frames × 65,664 B ≈ 117 GB; see the README's data section).

Concurrent builds (several trials start at once, on one node or on many over a shared disk):

- a builder takes a shard by creating `shard-N.lock` with O_CREAT|O_EXCL and keeps touching it
  (a heartbeat thread); other builders take the next free shard, then wait for the rest;
- a lock is stale when its holder is dead (same host: no such pid) or its heartbeat is older than
  `lock_timeout_s`; a stale lock is broken (renamed away) and the shard rebuilt;
- frames go to `shard-N.<token>.tmp`, which is fsynced and renamed to `shard-N.u8`; only then is
  `shard-N.json` written the same way. A shard without its marker, or whose .u8 has another size
  than the marker says, is not trusted: it is rebuilt. A killed builder leaves at most a .tmp
  (deleted by the next builder of that shard) and a lock that goes stale;
- the marker and the index are written by tmp + rename too, so readers see old or new, never half.
  Two builders of one shard (a lock broken by mistake) write identical bytes: the last rename wins.

Rename and O_EXCL are atomic on local filesystems and on NFSv3+. Decoding happens in a
`trainers.data.video.DecodeProcess` (a video that aborts or hangs decord is recorded as bad, with the
decoder's reason, and the loader skips it like any bad video).

    store = open_store(index, resize=(128, 171), root=None)   # builds or joins the build, then reads
    frames = store.load(path)          # uint8 (N, H, W, 3) memmap view; VideoDecodeError if bad
    store.verify()                     # re-reads everything against the crc32s (ShardStoreError)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
import zlib
from pathlib import Path

import numpy as np

from trainers.data.datasets import VideoIndex
from trainers.data.decode_process import DecodeProcess
from trainers.data.video import DEFAULT_DECODER, VideoDecodeError

log = logging.getLogger(__name__)

STORE_VERSION = 1
SHARD_VIDEOS = 64  # videos per shard: the unit of building, locking and rebuilding
LOCK_TIMEOUT_S = 60.0  # a lock whose heartbeat is older than this is stale
POLL_S = 1.0  # how often a waiting builder looks at the shards others hold


class ShardStoreError(RuntimeError):
    """A store that cannot be used as it is (corrupted shard found by verify(), bad settings)."""


def default_shard_dir() -> Path:
    base = os.environ.get("STARCH_CACHE")
    return (Path(base) / "shards" if base else Path.home() / ".cache" / "starch" / "shards").expanduser()


def store_key(
    paths: list[str], resize: tuple[int, int] | None, shard_videos: int, decoder: str = DEFAULT_DECODER
) -> str:
    """Dataset identity (each file's path, size, mtime) + resolution + layout + decoder + version
    (backends resize differently, as the frame cache's key also says)."""
    rest = f"|{decoder}" if decoder != DEFAULT_DECODER else ""  # decord's stores keep their key
    digest = hashlib.sha1(f"v{STORE_VERSION}|{tuple(resize) if resize else None}|{shard_videos}{rest}".encode())
    for path in paths:
        st = os.stat(path)
        digest.update(f"\n{path}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------- lock


class ShardLock:
    """`path` created exclusively, holding {host, pid, token}; its mtime is the heartbeat."""

    def __init__(self, path: Path, *, timeout_s: float = LOCK_TIMEOUT_S):
        self.path, self.timeout_s = path, float(timeout_s)
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        """True if this process now holds the lock; False if a live holder has it."""
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is None or not self._stale(holder):
                    return False
                self._break(holder)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token}, f)
            self._thread = threading.Thread(target=self._beat, name=f"heartbeat {self.path.name}", daemon=True)
            self._thread.start()
            return True
        return False

    def holder(self) -> dict | None:
        """The holder's {host, pid, token, age_s}, or None if there is no lock file now."""
        try:
            text, age = self.path.read_text(), time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        try:
            info = json.loads(text)
        except json.JSONDecodeError:  # being written this instant, or garbage left by a crash
            info = {}
        return {**info, "age_s": age}

    def _stale(self, holder: dict) -> bool:
        if holder["age_s"] > self.timeout_s:
            return True
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            try:
                os.kill(holder["pid"], 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
        return False

    def _break(self, holder: dict) -> None:
        again = self.holder()  # still the one judged stale? (narrows the race with another breaker)
        if again is None or again.get("token") != holder.get("token"):
            return
        log.warning(
            "frame store: breaking stale lock %s (holder %s pid %s, heartbeat %.0f s ago)",
            self.path,
            holder.get("host"),
            holder.get("pid"),
            holder["age_s"],
        )
        aside = self.path.with_name(f"{self.path.name}.stale.{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
            os.unlink(aside)
        except FileNotFoundError:
            pass

    def _beat(self) -> None:
        while not self._stop.wait(self.timeout_s / 6):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        holder = self.holder()
        if holder is not None and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------- store


class ShardStore:
    """The frames of one list of videos at one resize. Build with `build()` (or `open_store`), then
    `load(path)`. Picklable: a DataLoader worker reopens the index and memmaps lazily."""

    def __init__(
        self,
        paths: list[str],
        *,
        resize: tuple[int, int] | None,
        root: str | os.PathLike | None = None,
        shard_videos: int = SHARD_VIDEOS,
        decode_timeout_s: float = 600.0,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
        decoder: str = DEFAULT_DECODER,
    ):
        if not isinstance(shard_videos, int) or shard_videos < 1:
            raise ValueError(f"shard_videos must be an int >= 1, got {shard_videos!r}")
        self.paths = sorted({os.path.abspath(p) for p in paths})
        if not self.paths:
            raise ValueError("a frame store needs at least one video")
        self.resize = tuple(resize) if resize is not None else None
        self.shard_videos = shard_videos
        self.decode_timeout_s, self.lock_timeout_s = float(decode_timeout_s), float(lock_timeout_s)
        base = Path(root).expanduser() if root else default_shard_dir()
        self.decoder = decoder
        self.root = base / store_key(self.paths, self.resize, shard_videos, decoder)
        self.num_shards = -(-len(self.paths) // shard_videos)
        self.built_shards: list[int] = []  # the shards this process built (the rest others did, or earlier)
        self._index: dict | None = None
        self._maps: dict[int, np.memmap] = {}

    def __getstate__(self):
        return {**self.__dict__, "_index": None, "_maps": {}}

    # -- files
    def shard_path(self, s: int, suffix: str) -> Path:
        return self.root / f"shard-{s:05d}{suffix}"

    def shard_videos_of(self, s: int) -> list[str]:
        return self.paths[s * self.shard_videos : (s + 1) * self.shard_videos]

    def marker(self, s: int) -> dict | None:
        """Shard s's done marker if the shard is complete and its data file has the size the
        marker says; None otherwise (not built, being built, partial or corrupted)."""
        try:
            meta = json.loads(self.shard_path(s, ".json").read_text())
            size = self.shard_path(s, ".u8").stat().st_size
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(meta, dict) or meta.get("nbytes") != size or meta.get("version") != STORE_VERSION:
            return None
        if [v[0] for v in meta.get("videos", [])] != self.shard_videos_of(s):
            return None
        return meta

    # -- building
    def is_built(self) -> bool:
        return self._load_index(check=True) is not None

    def build(self) -> "ShardStore":
        """Build the shards nobody has built, wait for the ones others are building, write the
        index. Returns self, ready to read. Safe to call from many processes at once."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_description()
        decoder: DecodeProcess | None = None
        done: set[int] = set()  # markers seen valid; the index write checks them all once more
        last_note = time.monotonic()
        try:
            while self._load_index(check=True) is None:
                done |= {s for s in range(self.num_shards) if s not in done and self.marker(s) is not None}
                pending = [s for s in range(self.num_shards) if s not in done]
                progressed = False
                for s in pending:
                    lock = ShardLock(self.shard_path(s, ".lock"), timeout_s=self.lock_timeout_s)
                    if not lock.acquire():
                        continue
                    try:
                        if self.marker(s) is None:
                            decoder = decoder or DecodeProcess(timeout_s=self.decode_timeout_s, decoder=self.decoder)
                            self._build_shard(s, decoder, lock)
                            self.built_shards.append(s)
                    finally:
                        lock.release()
                    progressed = True
                if not pending:
                    if not self._write_index():  # a marker vanished (a shard found corrupted): go round
                        done.clear()
                elif not progressed:
                    if time.monotonic() - last_note > 60:
                        last_note = time.monotonic()
                        log.info("frame store %s: waiting for %d shard(s) other builders hold", self.root, len(pending))
                    time.sleep(POLL_S)
        finally:
            if decoder is not None:
                decoder.close()
        return self

    def _build_shard(self, s: int, decoder: DecodeProcess, lock: ShardLock) -> None:
        for stale in self.root.glob(f"shard-{s:05d}.*.tmp"):  # left by a killed builder
            stale.unlink(missing_ok=True)
        leftovers = [self.shard_path(s, suffix) for suffix in (".json", ".u8")]
        if any(p.exists() for p in leftovers):  # a partial or corrupted shard: not trusted, rebuilt
            log.warning("frame store %s: shard %d is incomplete or corrupted; rebuilding it", self.root, s)
        for p in leftovers:
            p.unlink(missing_ok=True)
        videos, offset, t0 = [], 0, time.perf_counter()
        tmp = self.shard_path(s, f".{lock.token[:8]}.tmp")
        with open(tmp, "wb") as out:
            for path in self.shard_videos_of(s):
                try:
                    frames = decoder.request({"op": "frames", "path": path, "resize": self.resize})["frames"]
                except VideoDecodeError as exc:
                    videos.append([path, offset, 0, 0, 0, 0, exc.reason])
                    continue
                frames = np.ascontiguousarray(frames)  # (N, H, W, 3) uint8
                n, h, w = frames.shape[:3]
                out.write(frames.data)
                videos.append([path, offset, n, h, w, zlib.crc32(frames.data), None])
                offset += frames.nbytes
            out.flush()
            os.fsync(out.fileno())
        meta = {"version": STORE_VERSION, "nbytes": offset, "videos": videos}
        try:
            os.replace(tmp, self.shard_path(s, ".u8"))
        except FileNotFoundError:  # our lock was broken and our .tmp removed: the new holder builds it
            return
        _write_atomic(self.shard_path(s, ".json"), json.dumps(meta).encode())
        bad = sum(1 for v in videos if v[6])
        log.info(
            "frame store %s: shard %d/%d built (%d videos, %d bad, %.2f GiB, %.1f s)",
            self.root,
            s + 1,
            self.num_shards,
            len(videos),
            bad,
            offset / 2**30,
            time.perf_counter() - t0,
        )

    def _write_description(self) -> None:
        path = self.root / "store.json"
        if not path.exists():
            desc = {
                "version": STORE_VERSION,
                "resize": self.resize,
                "videos": len(self.paths),
                "shards": self.num_shards,
                "shard_videos": self.shard_videos,
                "first_video": self.paths[0],
                "frames": "all",
            }
            _write_atomic(path, json.dumps(desc, indent=1).encode())

    def _write_index(self) -> bool:
        """Merge the shards' markers into index.npz; False if one is missing or invalid now."""
        rows, nbytes = [], []
        for s in range(self.num_shards):
            meta = self.marker(s)
            if meta is None:
                return False
            nbytes.append(meta["nbytes"])
            rows += [(s, *v) for v in meta["videos"]]
        shard, paths, offset, frames, height, width, crc, error = zip(*rows)
        arrays = dict(
            paths=np.array([p.encode() for p in paths]),  # UTF-8 bytes, for people: readers use self.paths
            shard=np.array(shard, dtype=np.int32),
            offset=np.array(offset, dtype=np.int64),
            frames=np.array(frames, dtype=np.int64),
            height=np.array(height, dtype=np.int32),
            width=np.array(width, dtype=np.int32),
            crc=np.array(crc, dtype=np.uint32),
            error=np.array([e or "" for e in error]),
            shard_nbytes=np.array(nbytes, dtype=np.int64),
        )
        tmp = self.root / f"index.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / "index.npz")
        total = int(arrays["shard_nbytes"].sum())
        log.info("frame store %s ready: %d videos, %.2f GiB", self.root, len(paths), total / 2**30)
        return True

    # -- reading
    def _load_index(self, *, check: bool) -> dict | None:
        """The index if it is there and every shard file has its recorded size. With check=True a
        shard that does not (truncated, replaced, deleted) loses its marker and the index, so the
        next build() rebuilds that shard."""
        try:
            with np.load(self.root / "index.npz") as z:  # the store's folder name hashes self.paths
                index = {k: z[k] for k in z.files if k != "paths"}
        except (FileNotFoundError, ValueError, OSError, EOFError, KeyError):
            return None
        if len(index.get("frames", ())) != len(self.paths):
            return None
        if check:
            for s, expected in enumerate(index["shard_nbytes"]):
                try:
                    size = self.shard_path(s, ".u8").stat().st_size
                except FileNotFoundError:
                    size = -1
                if size != expected:
                    log.warning(
                        "frame store %s: shard %d has %d bytes, the index says %d (partial or corrupted); "
                        "it will be rebuilt",
                        self.root,
                        s,
                        size,
                        expected,
                    )
                    self.shard_path(s, ".json").unlink(missing_ok=True)
                    (self.root / "index.npz").unlink(missing_ok=True)
                    return None
        index["row"] = {p: i for i, p in enumerate(self.paths)}
        return index

    def _shard_map(self, s: int) -> np.memmap:
        if s not in self._maps:
            self._maps[s] = np.memmap(self.shard_path(s, ".u8"), dtype=np.uint8, mode="r")
        return self._maps[s]

    def load(self, video_path: str | os.PathLike) -> np.ndarray | None:
        """Every frame of the video, uint8 (N, H, W, 3), a read-only view of the shard's memmap;
        None for a video the store does not hold. VideoDecodeError if it failed to decode at build."""
        if self._index is None:
            self._index = self._load_index(check=False)
            if self._index is None:
                raise ShardStoreError(f"frame store {self.root} has no index: call build() first")
        row = self._index["row"].get(os.path.abspath(video_path))
        if row is None:
            return None
        if self._index["error"][row]:
            raise VideoDecodeError(str(video_path), str(self._index["error"][row]))
        n, h, w = (int(self._index[k][row]) for k in ("frames", "height", "width"))
        start = int(self._index["offset"][row])
        return self._shard_map(int(self._index["shard"][row]))[start : start + n * h * w * 3].reshape(n, h, w, 3)

    def verify(self) -> int:
        """Re-read every video against the crc32 recorded at build time; returns the number of
        videos checked. ShardStoreError naming the shard and video on the first mismatch."""
        index = self._load_index(check=False)
        if index is None:
            raise ShardStoreError(f"frame store {self.root} has no index: call build() first")
        checked = 0
        for row, path in enumerate(self.paths):
            if index["error"][row]:
                continue
            n, h, w = (int(index[k][row]) for k in ("frames", "height", "width"))
            start, s = int(index["offset"][row]), int(index["shard"][row])
            data = self._shard_map(s)[start : start + n * h * w * 3]
            if zlib.crc32(data) != int(index["crc"][row]):
                raise ShardStoreError(
                    f"frame store {self.root}: shard {self.shard_path(s, '.u8').name} holds corrupted frames "
                    f"of {path} (crc32 mismatch); delete the shard's .json marker (or the store folder) to "
                    f"rebuild it"
                )
            checked += 1
        return checked

    def nbytes(self) -> int:
        index = self._load_index(check=False)
        return int(index["shard_nbytes"].sum()) if index is not None else 0


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def open_store(
    index: VideoIndex,
    *,
    resize: tuple[int, int] | None,
    root: str | os.PathLike | None = None,
    decode_timeout_s: float = 600.0,
    **kw,
) -> ShardStore:
    """The store of this subset's videos at this resize, built (or its build joined) if needed."""
    store = ShardStore([p for p, _ in index.videos], resize=resize, root=root, decode_timeout_s=decode_timeout_s, **kw)
    if not store.is_built():
        log.info(
            "frame store for %s/%s at %s: building %d shard(s) of %d videos in %s",
            index.format,
            index.subset,
            resize,
            store.num_shards,
            store.shard_videos,
            store.root,
        )
        store.build()
    return store
