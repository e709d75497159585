"""Dataset layouts of tiny real videos, built once per test session (a few seconds in total)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.videos import write_random_bytes, write_truncated, write_video, write_zero_bytes

SIZE = (32, 44)  # (H, W): tiny, so decoding is never the bottleneck of a test


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's ~/.cache/starch from a test."""
    monkeypatch.setenv("STARCH_CACHE", str(tmp_path_factory.mktemp("frame-cache")))


@pytest.fixture(autouse=True)
def _loader_logs(caplog):
    caplog.set_level(logging.INFO, logger="trainers")


def _ucf_name(cls: str, g: int, c: int) -> str:
    # real UCF101 quirk: folder HandstandPushups, files v_HandStandPushups_…
    stem = "HandStandPushups" if cls == "HandstandPushups" else cls
    return f"v_{stem}_g{g:02d}_c{c:02d}.avi"


@pytest.fixture(scope="session")
def ucf_root(tmp_path_factory) -> Path:
    """3 classes × 4 groups × 1 clip; groups 1 is test in split 1, group 2 in split 2, 3 in split 3."""
    root = tmp_path_factory.mktemp("ucf")
    classes = ["ApplyEyeMakeup", "Basketball", "HandstandPushups"]
    ann = root / "ucfTrainTestlist"
    ann.mkdir()
    (ann / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    for cls in classes:
        for g in range(1, 5):
            write_video(root / "UCF-101" / cls / _ucf_name(cls, g, 1), frames=24, size=SIZE)
    for split in (1, 2, 3):
        train, test = [], []
        for i, cls in enumerate(classes):
            for g in range(1, 5):
                rel = f"{cls}/{_ucf_name(cls, g, 1)}"
                (test.append(rel) if g == split else train.append(f"{rel} {i + 1}"))
        (ann / f"trainlist0{split}.txt").write_text("\r\n".join(train) + "\r\n")  # CRLF like the real files
        (ann / f"testlist0{split}.txt").write_text("\r\n".join(test) + "\r\n")
    return root


@pytest.fixture(scope="session")
def hmdb_root(tmp_path_factory) -> Path:
    """2 classes × 3 videos under hmdb51_org/; split N: video N is test, one video unused."""
    root = tmp_path_factory.mktemp("hmdb")
    ann = root / "testTrainMulti_7030_splits"
    ann.mkdir()
    for cls in ("brush_hair", "wave"):
        names = [f"{cls}_clip_{k}.avi" for k in range(3)]
        for name in names:
            write_video(root / "hmdb51_org" / cls / name, frames=20, size=SIZE)
        for split in (1, 2, 3):
            ids = ["2" if k == split - 1 else "1" for k in range(3)]
            ids[(split) % 3] = "0"
            lines = "".join(f"{n} {i} \n" for n, i in zip(names, ids))
            (ann / f"{cls}_test_split{split}.txt").write_text(lines)
    return root


@pytest.fixture(scope="session")
def kinetics_root(tmp_path_factory) -> Path:
    """ActivityNet-crawler layout; val videos use underscores in label folders, train uses spaces."""
    root = tmp_path_factory.mktemp("kinetics")
    rows = {"train": [], "validate": []}
    for label in ("abseiling", "playing guitar"):
        for k in range(3):
            split = "validate" if k == 2 else "train"
            yid = f"{label[:3]}{k:08d}"[:11]
            rows[split].append(f"{label},{yid},{10 * k},{10 * k + 10},{split}")
            folder = "val" if split == "validate" else "train"
            label_dir = label.replace(" ", "_") if folder == "val" else label
            write_video(root / folder / label_dir / f"{yid}_{10 * k:06d}_{10 * k + 10:06d}.mp4", frames=20, size=SIZE)
    (root / "annotations").mkdir()
    for split, lines in rows.items():
        text = "label,youtube_id,time_start,time_end,split\n" + "\n".join(lines) + "\n"
        (root / "annotations" / f"{split}.csv").write_text(text)
    return root


@pytest.fixture(scope="session")
def folder_root(tmp_path_factory) -> Path:
    """<root>/{train,test}/<class>/*.mp4 with 2 classes; 4 train + 2 test videos per class, 40 frames."""
    root = tmp_path_factory.mktemp("folder")
    for cls in ("left", "right"):
        for k in range(4):
            write_video(root / "train" / cls / f"{cls}_{k}.mp4", frames=40, size=SIZE)
        for k in range(2):
            write_video(root / "test" / cls / f"{cls}_{k}.mp4", frames=40, size=SIZE)
    (root / "starch_dataset.json").write_text(json.dumps({"flip_preserves_label": False}))
    return root


@pytest.fixture(scope="session")
def bad_root(tmp_path_factory) -> Path:
    """folder layout, class 'good' with 4 fine videos and class 'bad' with one of each kind of
    broken file (zero bytes, random bytes, truncated mp4 and avi) plus a 3-frame video."""
    root = tmp_path_factory.mktemp("bad")
    for k in range(4):
        write_video(root / "train" / "good" / f"good_{k}.mp4", frames=32, size=SIZE)
    bad = root / "train" / "bad"
    write_zero_bytes(bad / "zero.mp4")
    write_random_bytes(bad / "random.avi")
    write_truncated(bad / "half.mp4")
    write_truncated(bad / "half.avi")
    write_video(bad / "three_frames.mp4", frames=3, size=SIZE)
    return root
