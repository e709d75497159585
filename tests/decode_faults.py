"""Decode servers that fail on purpose, for the tests of the decode process's recovery.

The decode child imports the server it runs by name, so a test passes one of these
(`DecodeProcess(server=server(CrashMeStuck))`) or sets the default the loader's children use
(`monkeypatch.setattr(decode_process, "SERVER", server(LoaderFaults))`, inherited by forked
DataLoader workers). Each aborts or hangs on files whose path contains one of its names.
"""

from __future__ import annotations

import os
import time

from trainers.data.decode_process import DecodeServer


class FaultyServer(DecodeServer):
    abort_on: tuple[str, ...] = ()  # os.abort(), as decord does on a corrupt H.264 stream (#25)
    hang_on: tuple[str, ...] = ()  # block forever, as decord's get_batch can (#269)

    def handle(self, req: dict) -> dict:
        path = req.get("path", "")
        if any(name in path for name in self.abort_on):
            os.abort()
        if any(name in path for name in self.hang_on):
            time.sleep(10**6)
        return super().handle(req)


class CrashMeStuck(FaultyServer):
    abort_on, hang_on = ("crash_me",), ("stuck",)


class LoaderFaults(FaultyServer):
    abort_on, hang_on = ("left_1",), ("right_2",)


class AbortGood3(FaultyServer):
    abort_on = ("good_3",)


class HangOnV0(FaultyServer):
    hang_on = ("v0.mp4",)


class NoLibrary(DecodeServer):
    def load(self) -> None:  # as torchcodec without FFmpeg's shared libraries
        raise OSError("libavutil.so.58: cannot open shared object file: No such file or directory")


def server(cls: type[DecodeServer]) -> str:
    """The "module:Class" name a decode child imports."""
    return f"{cls.__module__}:{cls.__qualname__}"
