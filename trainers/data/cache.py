"""Node-local decoded-frame cache: each video decoded once, then clips are memory-mapped slices.

When: small datasets that are read for many epochs by many trials on the same node (the synthetic
default dataset, a few-class subset, a smoke test). Decoding dominates a small video ConvNet's
step time on CPU; a cached clip is a fancy-index into a page-cached .npy file.

Layout: one uint8 (N, H, W, 3) .npy per video, at the resize resolution, under
`$STARCH_CACHE` or `~/.cache/starch/frames`:

    <cache_dir>/<key[:2]>/<key>.npy     key = sha1(abs path, file size, mtime_ns, resize, decoder, version)

so editing or replacing a video, or changing `resize` or `decoder`, makes a new entry (old ones stay until
`FrameCache.clear()`; they are never read again).

Concurrency: whoever needs an entry first builds it into `<key>.npy.<pid>.<random>.tmp` and
`os.replace`s it into place. Rename is atomic on a local filesystem, so a reader sees either no
entry or a complete one; two processes building the same entry at once both succeed and the last
rename wins with identical content. No lock is needed. (Do not point the cache at NFS: it is meant
to be node-local.)

`cache='auto'` turns it on when the whole subset decodes to fewer than `STARCH_CACHE_AUTO_GB`
(default 4) GiB *and* that is under half the free space of the cache disk; the size is estimated
from a few probed videos (see `trainers.data.loader.make_loader`). UCF101 at 128×171 is ~160 GB: off.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np

from trainers.data.video import DEFAULT_DECODER, open_video

CACHE_VERSION = 1
OPEN_ENTRIES = 512  # entries a process keeps mapped (each holds a file descriptor)
DEFAULT_AUTO_LIMIT_GB = 4.0


def default_cache_dir() -> Path:
    return Path(os.environ.get("STARCH_CACHE") or Path.home() / ".cache" / "starch" / "frames").expanduser()


def auto_limit_bytes() -> int:
    return int(float(os.environ.get("STARCH_CACHE_AUTO_GB", DEFAULT_AUTO_LIMIT_GB)) * 2**30)


def should_cache(estimated_bytes: int, cache_dir: str | os.PathLike | None = None) -> tuple[bool, str]:
    """The `cache='auto'` rule: (decision, one-line reason for the log)."""
    directory = Path(cache_dir) if cache_dir else default_cache_dir()
    probe_dir = next((p for p in (directory, *directory.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(probe_dir).free
    limit = auto_limit_bytes()
    gib = estimated_bytes / 2**30
    if estimated_bytes > limit:
        return False, f"decoded size ~{gib:.2f} GiB > STARCH_CACHE_AUTO_GB={limit / 2**30:g}"
    if estimated_bytes > free / 2:
        return False, f"decoded size ~{gib:.2f} GiB > half the free space of {probe_dir}"
    return True, f"decoded size ~{gib:.3f} GiB <= {limit / 2**30:g} GiB"


class FrameCache:
    """Decoded frames of many videos at one resize resolution, shared by all processes of a node."""

    def __init__(
        self, root: str | os.PathLike | None = None, *, resize: tuple[int, int] | None, decoder: str = DEFAULT_DECODER
    ):
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self.resize = tuple(resize) if resize is not None else None
        self.decoder = decoder  # backends scale differently: their frames are not interchangeable
        self._open: OrderedDict[str, np.ndarray] = OrderedDict()  # video path → its entry, mapped (LRU)

    def __getstate__(self):  # a DataLoader worker maps its own entries
        return {**self.__dict__, "_open": OrderedDict()}

    def key(self, video_path: str | os.PathLike) -> str:
        path = os.path.abspath(video_path)
        st = os.stat(path)
        text = f"{path}|{st.st_size}|{st.st_mtime_ns}|{self.resize}|{self.decoder}|v{CACHE_VERSION}"
        return hashlib.sha1(text.encode()).hexdigest()

    def entry_path(self, video_path: str | os.PathLike) -> Path:
        key = self.key(video_path)
        return self.root / key[:2] / f"{key}.npy"

    def load(self, video_path: str | os.PathLike) -> np.ndarray | None:
        """The cached (N, H, W, 3) uint8 frames as a read-only memmap, or None if not cached.

        The last OPEN_ENTRIES entries stay mapped in this process, so a clip of a video read
        before costs a slice, not a stat, a hash, an open and a header parse (issue 25: those were
        half of a cached clip's CPU time). A video replaced while it is mapped is seen again once
        its entry leaves the list; within one trial the videos do not change."""
        key = str(video_path)
        frames = self._open.get(key)
        if frames is not None:
            self._open.move_to_end(key)
            return frames
        try:
            frames = np.load(self.entry_path(video_path), mmap_mode="r")
        except (FileNotFoundError, ValueError, OSError):
            return None
        self._open[key] = frames
        if len(self._open) > OPEN_ENTRIES:
            self._open.popitem(last=False)
        return frames

    def build(self, video_path: str | os.PathLike, *, chunk: int = 32) -> Path:
        """Decode the whole video into its entry (idempotent; temp file + atomic rename).
        Raises trainers.data.video.VideoDecodeError for an undecodable video, OSError for disk trouble.
        Run it in the loader's decode process: it opens a video reader."""
        entry = self.entry_path(video_path)
        if entry.is_file():
            return entry
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f"{entry.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open_video(video_path, resize=self.resize, decoder=self.decoder) as reader:
                out = None
                for start, frames in zip(range(0, reader.num_frames, chunk), reader.iter_chunks(chunk)):
                    if out is None:  # (N, H, W, 3); H, W known once the first chunk is decoded
                        out = np.lib.format.open_memmap(
                            tmp, mode="w+", dtype=np.uint8, shape=(reader.num_frames, *frames.shape[1:])
                        )
                    out[start : start + len(frames)] = frames
                out.flush()
                del out
            os.replace(tmp, entry)
        finally:
            if tmp.exists():
                tmp.unlink()
        return entry

    def clear(self) -> None:
        """Delete every entry of this cache directory (all resolutions)."""
        shutil.rmtree(self.root, ignore_errors=True)
