"""Tests for the synthetic motion benchmark (trainers/data/synth.py).

The content checks assert the property the benchmark exists for: a single frame carries no class
information, while the motion (direction and speed profile) is recoverable, also after x264 and
decord; and the difficulty levels change what they say they change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import decord
import numpy as np
import pytest

from trainers.data.synth import (
    DEFAULT_LEVEL,
    DIRECTIONS,
    LEVELS,
    MEAN_SPEED,
    METADATA_FILE,
    Level,
    class_motions,
    class_names,
    displacement,
    draw_motions,
    encode_mp4,
    generate_video,
    write_synthetic_dataset,
)

# small but complete: both profiles; 1 test + 2 train videos per class
SMALL = dict(classes=8, videos_per_class=3, frames=16, size=(32, 44), seed=3)


def _decode(path: Path) -> np.ndarray:
    reader = decord.VideoReader(str(path))
    return reader.get_batch(list(range(len(reader)))).asnumpy()  # (T, H, W, 3) uint8


def _luma(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # (T, H, W)


def matched_class(frames: np.ndarray, motions: dict[str, tuple[str, str]], level: int | Level) -> str:
    """The class whose motion best explains the video: an observer that knows every class's
    trajectory. For each class and speed gap of the level, frame 0 shifted along the trajectory is
    correlated with every later frame (temporal mean removed: that is mostly the static background);
    the class of the highest sum wins. The sprites that carry the class motion are the largest group
    moving one way, so the true class should win unless the video's gap is too small to tell."""
    y = _luma(frames)
    y = y - y.mean(axis=0, keepdims=True)
    lo, hi = (LEVELS[level] if isinstance(level, int) else level).gap
    scores = {}
    for name, (direction, profile) in motions.items():
        dx, dy = DIRECTIONS[direction]
        for gap in np.linspace(lo, hi, 7):
            travel = displacement(profile, gap, len(y))
            score = sum(
                float((y[t] * np.roll(y[0], (dy * travel[t], dx * travel[t]), axis=(0, 1))).sum())
                for t in range(1, len(y))
            )
            scores[name] = max(scores.get(name, -np.inf), score)
    return max(scores, key=scores.get)


def _frame_features(frame: np.ndarray) -> np.ndarray:
    """What a per-frame model could see globally: mean and std per channel, luma histogram."""
    pixels = frame.reshape(-1, 3).astype(np.float64)
    hist, _ = np.histogram(_luma(frame[None]), bins=8, range=(0, 256), density=True)
    return np.concatenate([pixels.mean(0), pixels.std(0), hist * 256])


def _nearest_centroid_loo(features: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out accuracy of a nearest-centroid classifier on standardised features."""
    z = (features - features.mean(0)) / (features.std(0) + 1e-9)
    classes = np.unique(labels)
    correct = 0
    for i in range(len(z)):
        keep = np.arange(len(z)) != i
        centroids = np.stack([z[keep & (labels == c)].mean(0) for c in classes])
        correct += classes[np.argmin(((centroids - z[i]) ** 2).sum(1))] == labels[i]
    return correct / len(z)


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "small"
    return out, write_synthetic_dataset(out, **SMALL, workers=2)


# --------------------------------------------------------------------------- classes


def test_class_names_and_profiles():
    assert class_names(4) == ["DownFaster", "LeftFaster", "RightFaster", "UpFaster"]
    assert class_names(8) == [
        "DownFaster",
        "DownSlower",
        "LeftFaster",
        "LeftSlower",
        "RightFaster",
        "RightSlower",
        "UpFaster",
        "UpSlower",
    ]
    assert len(class_names(16)) == 16 and "RightPulsing" in class_names(16) and "UpSteady" in class_names(12)
    assert class_motions(8)["LeftSlower"] == ("left", "slower")


# --------------------------------------------------------------------------- layout


def test_layout_split_files_and_metadata(small):
    out, meta = small
    names = class_names(8)
    lists = out / "ucfTrainTestlist"
    assert (lists / "classInd.txt").read_text().splitlines() == [f"{i} {n}" for i, n in enumerate(names, start=1)]
    train = [line.split(" ") for line in (lists / "trainlist01.txt").read_text().splitlines()]
    test = (lists / "testlist01.txt").read_text().splitlines()
    assert len(train) == 8 * 2 and len(test) == 8 * 1
    assert all(len(parts) == 2 for parts in train)
    assert all(" " not in line for line in test)

    def parse(rel: str) -> tuple[str, str]:  # (class folder, group)
        folder, name = rel.split("/")
        cls, group, clip = name.removeprefix("v_").removesuffix(".mp4").rsplit("_", 2)
        assert cls == folder and group[0] == "g" and clip[0] == "c"
        assert len(group) == 3 and len(clip) == 3  # two digits each
        return folder, group

    for rel, label in train:
        assert names[int(label) - 1] == parse(rel)[0]
    train_groups = {parse(rel) for rel, _ in train}
    test_groups = {parse(rel) for rel in test}
    assert not train_groups & test_groups  # whole groups go to one split, as in UCF101

    listed = {rel for rel, _ in train} | set(test)
    on_disk = {p.relative_to(out / "UCF-101").as_posix() for p in out.rglob("*.mp4")}
    assert listed == on_disk
    assert not [p for p in out.rglob("*") if "tmp" in p.name or p.name.startswith(".")]

    saved = json.loads((out / METADATA_FILE).read_text())
    assert saved == meta
    assert saved["name"] == "starch-synthetic-motion"
    assert saved["flip_preserves_label"] is False
    assert saved["classes"] == names
    assert saved["version"] == 3 and saved["label"] == "synthetic-motion"
    assert saved["params"] == {
        "classes": 8,
        "videos_per_class": 3,
        "frames": 16,
        "size": [32, 44],
        "seed": 3,
        "level": DEFAULT_LEVEL,
        "test_fraction": 0.25,
    }
    assert saved["level"] == LEVELS[DEFAULT_LEVEL].to_dict()
    assert saved["motion"]["UpSlower"] == {"direction": "up", "profile": "slower"}


def test_every_file_decodes_with_decord(small):
    out, _ = small
    paths = sorted((out / "UCF-101").rglob("*.mp4"))
    assert len(paths) == 24
    for path in paths:
        reader = decord.VideoReader(str(path))
        assert len(reader) == 16, path
        assert reader[0].shape == (32, 44, 3), path
        assert reader.get_avg_fps() == pytest.approx(25)


def test_default_split_is_ucf_like():
    """200 videos per class: 50 test videos in g01-g07, 150 train videos in g08-g26."""
    from trainers.data.synth import _split

    rows = _split(200, 0.25)
    test_groups = {g for s, g, _ in rows if s == "test"}
    train_groups = {g for s, g, _ in rows if s == "train"}
    assert sum(s == "test" for s, _, _ in rows) == 50
    assert test_groups == set(range(1, 8)) and train_groups == set(range(8, 27))
    assert max(c for _, _, c in rows) == 8
    # small counts: at least one video on each side, halves rounded up
    assert [s for s, _, _ in _split(2, 0.25)] == ["test", "train"]
    assert sum(s == "test" for s, _, _ in _split(10, 0.25)) == 3
    assert sum(s == "test" for s, _, _ in _split(4, 0.9)) == 3


# --------------------------------------------------------------------------- determinism, cache


def test_generate_video_is_deterministic_per_seed():
    def digest(seed: int) -> str:
        video = generate_video(np.random.default_rng(seed), direction="up", profile="slower", frames=16)
        assert video.dtype == np.uint8 and video.shape == (16, 32, 44, 3)
        return hashlib.sha256(video.tobytes()).hexdigest()

    assert digest(7) == digest(7)
    assert digest(7) != digest(8)


def test_dataset_is_deterministic_across_runs_and_workers(small, tmp_path):
    """Same seed: byte-identical files whatever the number of workers; other seed: other frames."""
    out, _ = small
    again = tmp_path / "again"
    write_synthetic_dataset(again, **SMALL, workers=1)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (out / rel).read_bytes() == (again / rel).read_bytes(), rel

    other = tmp_path / "other"
    write_synthetic_dataset(other, **{**SMALL, "seed": 4}, workers=1)
    for rel in ["LeftSlower/v_LeftSlower_g01_c01.mp4", "UpFaster/v_UpFaster_g03_c01.mp4"]:
        first = _decode(out / "UCF-101" / rel)
        assert np.abs(first.astype(int) - _decode(other / "UCF-101" / rel)).mean() > 20


def test_encoding_is_byte_identical_when_repeated(tmp_path):
    """Regression: with mbtree, x264 read uninitialised memory and the bytes varied run to run."""
    rng = np.random.default_rng
    video = generate_video(rng(1), direction="left", profile="slower", frames=24)
    digests = set()
    for i in range(6):
        other = generate_video(rng(100 + i), direction="up", profile="faster", frames=24)
        encode_mp4(other, tmp_path / "other.mp4")  # leaves different memory behind
        encode_mp4(video, tmp_path / "video.mp4")
        digests.add(hashlib.sha256((tmp_path / "video.mp4").read_bytes()).hexdigest())
    assert len(digests) == 1


def test_second_call_is_cached_and_mismatch_refused(tmp_path):
    out = tmp_path / "ds"
    kw = dict(classes=4, videos_per_class=2, frames=4, seed=1, workers=1)
    first = write_synthetic_dataset(out, **kw)
    before = _mtimes(out)
    assert write_synthetic_dataset(out, **kw) == first
    assert _mtimes(out) == before  # nothing rewritten

    with pytest.raises(ValueError, match=r"other parameters.*frames=4 vs 6.*overwrite=True"):
        write_synthetic_dataset(out, **{**kw, "frames": 6})
    assert _mtimes(out) == before

    meta = write_synthetic_dataset(out, **{**kw, "frames": 6}, overwrite=True)
    assert meta["params"]["frames"] == 6
    assert len(decord.VideoReader(str(next(out.rglob("*.mp4"))))) == 6


def test_an_older_version_is_rewritten_not_refused(tmp_path):
    """A cache of an older VERSION (e.g. the demo's ~/.cache from before an upgrade) is rebuilt."""
    out = tmp_path / "ds"
    kw = dict(classes=4, videos_per_class=2, frames=4, seed=1, workers=1)
    write_synthetic_dataset(out, **kw)
    meta_path = out / METADATA_FILE
    old = json.loads(meta_path.read_text())
    old["version"] = 2
    old["params"].pop("level")
    meta_path.write_text(json.dumps(old))
    (out / "UCF-101" / "Down1").mkdir()  # a VERSION 2 class folder
    meta = write_synthetic_dataset(out, **kw)
    assert meta["version"] == 3 and json.loads(meta_path.read_text())["version"] == 3
    assert sorted(p.name for p in (out / "UCF-101").iterdir()) == class_names(4)


def test_incomplete_or_interrupted_dataset_is_rewritten(tmp_path):
    out = tmp_path / "ds"
    kw = dict(classes=4, videos_per_class=2, frames=4, seed=1, workers=1)
    write_synthetic_dataset(out, **kw)
    victim = out / "UCF-101" / "DownFaster" / "v_DownFaster_g01_c01.mp4"
    victim.unlink()
    write_synthetic_dataset(out, **kw)
    assert victim.is_file()


def test_run_that_dies_midway_does_not_look_complete(tmp_path, monkeypatch):
    import trainers.data.synth as synth

    out = tmp_path / "ds"
    kw = dict(classes=4, videos_per_class=2, frames=4, seed=1, workers=1)
    real_encode, written = synth.encode_mp4, []

    def dying_encode(frames, path, **options):
        if len(written) == 5:
            raise KeyboardInterrupt  # as if the run were killed after five videos
        real_encode(frames, path, **options)
        written.append(path)

    monkeypatch.setattr(synth, "encode_mp4", dying_encode)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic_dataset(out, **kw)
    assert len(list(out.rglob("*.mp4"))) == 5
    assert not (out / METADATA_FILE).exists()  # so no reader or cache takes it for complete

    monkeypatch.setattr(synth, "encode_mp4", real_encode)
    meta = write_synthetic_dataset(out, **kw)  # ours (partial marker): rewritten, not refused
    assert len(list(out.rglob("*.mp4"))) == 8 and (out / METADATA_FILE).is_file()
    assert not (out / ".starch_dataset.partial").exists() and meta["videos"] == {"train": 4, "test": 4}


def test_encoding_change_invalidates_the_cache(tmp_path, monkeypatch):
    import trainers.data.synth as synth

    out = tmp_path / "ds"
    kw = dict(classes=4, videos_per_class=2, frames=4, seed=1, workers=1)
    write_synthetic_dataset(out, **kw)
    monkeypatch.setattr(synth, "CRF", synth.CRF + 1)
    with pytest.raises(ValueError, match="encoding"):
        write_synthetic_dataset(out, **kw)
    assert write_synthetic_dataset(out, **kw, overwrite=True)["encoding"]["crf"] == synth.CRF


def test_foreign_ucf_folder_is_never_touched(tmp_path):
    real = tmp_path / "ucf" / "UCF-101" / "ApplyEyeMakeup"
    real.mkdir(parents=True)
    (real / "v_ApplyEyeMakeup_g01_c01.avi").write_bytes(b"not ours")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="not written by write_synthetic_dataset"):
            write_synthetic_dataset(tmp_path / "ucf", classes=4, videos_per_class=2, frames=4, overwrite=overwrite)
    assert (real / "v_ApplyEyeMakeup_g01_c01.avi").read_bytes() == b"not ours"

    (tmp_path / "ucf" / METADATA_FILE).write_text('{"name": "ucf101", "flip_preserves_label": true}')
    with pytest.raises(ValueError, match="not a dataset written by write_synthetic_dataset"):
        write_synthetic_dataset(tmp_path / "ucf", classes=4, videos_per_class=2, frames=4, overwrite=True)
    assert (real / "v_ApplyEyeMakeup_g01_c01.avi").read_bytes() == b"not ours"


# --------------------------------------------------------------------------- content


def test_first_frame_is_identical_for_every_class():
    """The random draws ignore the class: equal generators give an equal first frame."""
    videos = {
        name: generate_video(np.random.default_rng(11), direction=d, profile=p, classes=16, frames=4)
        for name, (d, p) in class_motions(16).items()
    }
    first = videos["LeftFaster"]
    for name, video in videos.items():
        np.testing.assert_array_equal(video[0], first[0], err_msg=name)
    assert not np.array_equal(videos["LeftFaster"][1], videos["RightFaster"][1])
    assert not np.array_equal(videos["LeftFaster"][1], videos["LeftSlower"][1])  # the last frames meet again


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_single_frame_has_no_class_information_but_motion_does(level):
    """At every level: a per-frame statistic stays at chance, the class's motion explains the video."""
    motions = class_motions(8)
    features, matched, labels = [], [], []
    for label, (name, (direction, profile)) in enumerate(motions.items()):
        for i in range(8):
            rng = np.random.default_rng([99, label, i])
            video = generate_video(rng, direction=direction, profile=profile, level=level, frames=16)
            features.append(_frame_features(video[int(np.random.default_rng(i).integers(16))]))
            matched.append(matched_class(video, motions, level) == name)
            labels.append(label)
    single_frame = _nearest_centroid_loo(np.array(features), np.array(labels))
    assert single_frame < 0.25  # chance is 1/8; a separable statistic would be far above
    assert np.mean(matched) >= 0.8, np.mean(matched)


def test_levels_change_what_they_say():
    """Each step of the knob changes one thing, towards harder: 1->2 and 3->4 the share of sprites
    that carry the class motion, 2->3 the speed gaps; and the videos follow the parameters."""
    steps = [(LEVELS[n], LEVELS[n + 1]) for n in sorted(LEVELS)[:-1]]
    changed = [
        ("coherence" if a.coherence != b.coherence else "") + ("gap" if a.gap != b.gap else "") for a, b in steps
    ]
    assert changed == ["coherence", "gap", "coherence"]
    for a, b in steps:
        assert b.coherence[0] <= a.coherence[0] and b.gap[1] <= a.gap[1]

    for n, level in LEVELS.items():
        # the drawn share of carriers stays in the level's range and fills it
        shares = []
        for i in range(300):
            drawn, signal = draw_motions(np.random.default_rng([n, i]), motion=("up", "faster"), level=n, count=24)
            assert sum(m == ("up", "faster") for m in drawn) >= signal
            shares.append(signal / 24)
        lo, hi = level.coherence
        assert lo - 1 / 48 <= min(shares) < lo + 0.1 and hi - 0.1 < max(shares) <= hi + 1 / 48, (n, shares)

    # speeds: faster goes MEAN - g/2 -> MEAN + g/2, slower back, the same distance in the same time
    for gap in (0.0, 1.0, 3.0):
        faster, slower = (np.diff(displacement(p, gap, 48)) for p in ("faster", "slower"))
        assert faster[:6].mean() == pytest.approx(MEAN_SPEED - gap / 2 * (1 - 6 / 47), abs=0.5)
        assert faster[-6:].mean() == pytest.approx(MEAN_SPEED + gap / 2 * (1 - 6 / 47), abs=0.5)
        assert slower[:6].mean() == pytest.approx(MEAN_SPEED + gap / 2 * (1 - 6 / 47), abs=0.5)
        assert abs(int(faster.sum()) - int(slower.sum())) <= 1
        assert np.diff(displacement("steady", gap, 48)).mean() == pytest.approx(MEAN_SPEED, abs=0.1)
        assert 0 <= displacement("pulsing", gap, 48).min()  # pulsing never runs backwards
    np.testing.assert_array_equal(displacement("faster", 0.0, 48), displacement("slower", 0.0, 48))

    # a harder level really is harder for the observer that knows the trajectories
    def observed(level: int) -> float:
        motions, hits = class_motions(8), []
        for label, (name, (d, p)) in enumerate(motions.items()):
            for i in range(6):
                video = generate_video(
                    np.random.default_rng([7, label, i]), direction=d, profile=p, level=level, frames=16
                )
                hits.append(matched_class(video, motions, level) == name)
        return float(np.mean(hits))

    assert observed(1) >= observed(4)


def test_motion_survives_x264(small):
    """The mp4 files keep the motion: the class's trajectory explains the decoded frames."""
    out, meta = small
    motions = {n: (m["direction"], m["profile"]) for n, m in meta["motion"].items()}
    hits = [
        matched_class(_decode(path), motions, meta["params"]["level"]) == path.parent.name
        for path in sorted((out / "UCF-101").rglob("*.mp4"))
    ]
    assert np.mean(hits) >= 0.8, hits


def test_x264_keeps_the_luma_texture(tmp_path):
    """Decoded frames stay close to the source: luma PSNR well above what blurs 1-px texture."""
    out = tmp_path / "q"
    write_synthetic_dataset(out, classes=4, videos_per_class=2, frames=8, seed=5, workers=1)
    from trainers.data.synth import _video_rng

    path = out / "UCF-101" / "RightFaster" / "v_RightFaster_g01_c01.mp4"  # index 0 of RightFaster
    source = generate_video(
        _video_rng(5, "right", "faster", 0), direction="right", profile="faster", classes=4, frames=8
    )
    error = _luma(_decode(path)) - _luma(source)
    psnr = 10 * np.log10(255**2 / np.mean(error**2))
    assert psnr > 28, psnr


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "override, field",
    [
        ({"classes": 6}, r"classes must be one of \[4, 8, 12, 16\]"),
        ({"classes": 20}, "classes"),
        ({"size": (32, 43)}, "size must be even"),
        ({"size": (8, 8)}, "size"),
        ({"size": 32}, "size"),
        ({"frames": 0}, "frames"),
        ({"videos_per_class": 1}, "videos_per_class"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"seed": -1}, "seed"),
        ({"level": 0}, r"level must be one of \[1, 2, 3, 4\]"),
        ({"level": 2.0}, "level"),
        ({"workers": 0}, "workers"),
    ],
)
def test_invalid_arguments_name_the_field(tmp_path, override, field):
    kw = {**dict(classes=4, videos_per_class=4, frames=4, workers=1), **override}
    with pytest.raises(ValueError, match=field):
        write_synthetic_dataset(tmp_path / "bad", **kw)
    assert not (tmp_path / "bad").exists()


def test_generate_video_validates():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="direction"):
        generate_video(rng, direction="north", profile="faster")
    with pytest.raises(ValueError, match="profile"):
        generate_video(rng, direction="up", profile="sideways")
    with pytest.raises(ValueError, match="frames"):
        generate_video(rng, direction="up", profile="faster", frames=0)
    with pytest.raises(ValueError, match="level"):
        generate_video(rng, direction="up", profile="faster", level=5)
