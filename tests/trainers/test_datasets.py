"""DataSpec validation and every index format, from layouts the conftest writes."""

import json
import os
import shutil

import pytest

from trainers.data.datasets import DataSpec, MissingVideosError, auto_resize, build_index


def test_spec_round_trips_through_json():
    spec = DataSpec(
        format="kinetics", root="/data/k400", resize=(64, 86), crop=56, hflip=False, cache=True, sample_timeout_s=5
    )
    again = DataSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.resize == (64, 86)


@pytest.mark.parametrize(
    "field, value, valid",
    [
        ("format", "ucf", "ucf101"),
        ("split", 4, "1..3"),
        ("subset", "val", "train"),
        ("clip_len", 0, "greater than or equal to 1"),
        ("sampling_rate", 1.5, "valid integer"),
        ("resize", (100, 171), "crop 112"),
        ("resize", "big", "'auto'"),
        ("short_video", "pad", "loop"),
        ("hflip", "yes", "null"),
        ("num_workers", -1, "greater than or equal to 0"),
        ("batch_size", 0, "greater than or equal to 1"),
        ("sample_timeout_s", 0, "greater than 0"),
        ("cache", "yes", "'auto'"),
        ("eval_clips", 0, "greater than or equal to 1"),
    ],
)
def test_every_field_is_validated_with_field_value_and_valid_values(field, value, valid):
    with pytest.raises(ValueError) as err:
        DataSpec(**{"format": "ucf101", "root": "/data", field: value})
    assert field in str(err.value) and repr(value) in str(err.value) and valid in str(err.value)


def test_unknown_field_is_named():
    with pytest.raises(ValueError, match="DataSpec: frames: unknown key"):
        DataSpec.from_dict({"format": "csv", "root": "/x", "frames": 16})


def test_auto_resize_matches_the_papers():
    assert auto_resize(112) == (128, 171) and auto_resize(56) == (64, 86) and auto_resize(224) == (256, 342)
    assert auto_resize(160) == (183, 244)
    assert DataSpec(format="csv", root="/x", resize=None).resize_hw() is None


@pytest.mark.parametrize("split, test_group", [(1, 1), (2, 2), (3, 3)])
def test_ucf101_splits(ucf_root, split, test_group):
    spec = DataSpec(format="ucf101", root=str(ucf_root), split=split)
    train, test = build_index(spec, "train"), build_index(spec, "test")
    assert train.classes == test.classes == ("ApplyEyeMakeup", "Basketball", "HandstandPushups")
    assert len(train) == 9 and len(test) == 3
    assert all(f"_g{test_group:02d}_" in p for p, _ in test.videos)
    assert not any(f"_g{test_group:02d}_" in p for p, _ in train.videos)
    for index in (train, test):  # label matches the class folder, incl. the HandStand spelling
        assert all(os.path.basename(os.path.dirname(p)) == index.classes[y] for p, y in index.videos)
    assert train.flip_preserves_label


def test_ucf101_annotations_in_root_and_overrides(ucf_root, tmp_path):
    flat = tmp_path / "flat"
    shutil.copytree(ucf_root / "ucfTrainTestlist", flat)
    spec = DataSpec(format="ucf101", root=str(flat), video_root=str(ucf_root / "UCF-101"))
    assert len(build_index(spec, "test")) == 3
    spec = DataSpec(
        format="ucf101",
        root=str(tmp_path),
        video_root=str(ucf_root / "UCF-101"),
        annotation_root=str(ucf_root / "ucfTrainTestlist"),
    )
    assert len(build_index(spec, "train")) == 9


def test_missing_listed_videos_fail_at_construction(ucf_root, tmp_path):
    ann = tmp_path / "ann"
    shutil.copytree(ucf_root / "ucfTrainTestlist", ann)
    with open(ann / "trainlist01.txt", "a") as f:
        f.write("Basketball/v_Basketball_g99_c01.avi 2\nBasketball/v_Basketball_g98_c01.avi 2\n")
    spec = DataSpec(format="ucf101", root=str(ucf_root), annotation_root=str(ann))
    with pytest.raises(MissingVideosError, match=r"2 of 11 listed videos are missing .*g99") as err:
        build_index(spec, "train")
    assert isinstance(err.value, FileNotFoundError)
    assert "missing_videos: skip" in str(err.value)  # the way out is named
    index = build_index(spec, "train", allow_missing=True)
    assert len(index) == 9 and len(index.missing) == 2


def test_missing_videos_skip_trains_on_the_present_ones_and_counts_the_rest(synth_root, tmp_path, caplog):
    """Kinetics copies always lack videos; `missing_videos: skip` warns once and the trial's
    records carry the count."""
    import torch

    from spaces import named
    from trainers.recipe import Recipe
    from trainers.trial import TrialConfig, run_trial

    ann = tmp_path / "ann"
    shutil.copytree(synth_root / "ucfTrainTestlist", ann)
    with open(ann / "trainlist01.txt", "a") as f:
        f.write("LeftFaster/v_LeftFaster_g99_c01.mp4 2\n")  # listed, never downloaded
    spec = DataSpec(
        format="ucf101",
        root=str(synth_root),
        annotation_root=str(ann),
        resize=None,
        num_workers=0,
        batch_size=8,
        eval_clips=1,
        missing_videos="skip",
    )
    with caplog.at_level("WARNING", logger="trainers.data.datasets"):
        index = build_index(spec, "train")
    assert index.missing == (str(synth_root / "UCF-101" / "LeftFaster" / "v_LeftFaster_g99_c01.mp4"),)
    assert "1 of" in caplog.text and "skipped (missing_videos: skip)" in caplog.text
    torch.manual_seed(0)
    records = []
    run_trial(
        TrialConfig(named("r3d_18", width=2, frames=4, crop=32, blocks=(1, 1, 1, 1)), spec, Recipe(epochs=1)),
        lambda r, s: records.append(r),
    )
    assert records[-1]["missing_videos"] == 1 and records[-1]["status"] == "completed"
    with pytest.raises(ValueError, match="missing_videos"):
        DataSpec(format="ucf101", root="/x", missing_videos="ignore")


def test_hmdb51_splits_ignore_unused_videos(hmdb_root):
    spec = DataSpec(format="hmdb51", root=str(hmdb_root), split=1)
    train, test = build_index(spec, "train"), build_index(spec, "test")
    assert train.classes == ("brush_hair", "wave")
    assert sorted(os.path.basename(p) for p, _ in test.videos) == ["brush_hair_clip_0.avi", "wave_clip_0.avi"]
    assert sorted(os.path.basename(p) for p, _ in train.videos) == ["brush_hair_clip_2.avi", "wave_clip_2.avi"]
    assert all(train.classes[y] in p for p, y in train.videos)
    assert len(build_index(DataSpec(format="hmdb51", root=str(hmdb_root), split=3), "test")) == 2


def test_kinetics_csv_with_val_folder_and_label_spellings(kinetics_root):
    spec = DataSpec(format="kinetics", root=str(kinetics_root))
    train, val = build_index(spec, "train"), build_index(spec, "test")
    assert train.classes == ("abseiling", "playing guitar")
    assert len(train) == 4 and len(val) == 2
    assert all(os.sep + "val" + os.sep in p and p.endswith("_000020_000030.mp4") for p, _ in val.videos)
    assert {y for _, y in val.videos} == {0, 1}


def test_kinetics_flat_csvs(kinetics_root, tmp_path):
    for name, src in (("train.csv", "train.csv"), ("val.csv", "validate.csv")):
        shutil.copy(kinetics_root / "annotations" / src, tmp_path / name)
    spec = DataSpec(format="kinetics", root=str(tmp_path), video_root=str(kinetics_root))
    assert len(build_index(spec, "test")) == 2


def test_folder_layout_and_dataset_json(folder_root):
    spec = DataSpec(format="folder", root=str(folder_root))
    train, test = build_index(spec, "train"), build_index(spec, "test")
    assert train.classes == ("left", "right") and len(train) == 8 and len(test) == 4
    assert train.flip_preserves_label is False


def test_folder_without_subsets_is_split_by_hash(folder_root):
    spec = DataSpec(format="folder", root=str(folder_root / "train"))
    train, test = build_index(spec, "train"), build_index(spec, "test")
    assert len(train) + len(test) == 8 and not set(train.videos) & set(test.videos)


def test_csv_with_names_and_ints(folder_root, tmp_path):
    rows = [f"{p},{cls}" for cls in ("left", "right") for p in sorted((folder_root / "train" / cls).iterdir())]
    (tmp_path / "train.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "test.csv").write_text(f"{folder_root}/test/right/right_0.mp4,right\n")
    spec = DataSpec(format="csv", root=str(tmp_path))
    train, test = build_index(spec, "train"), build_index(spec, "test")
    assert train.classes == ("left", "right") and len(train) == 8 and test.videos[0][1] == 1
    (tmp_path / "all.csv").write_text("test/left/left_1.mp4,3\n")
    one = build_index(DataSpec(format="csv", root=str(tmp_path / "all.csv"), video_root=str(folder_root)), "test")
    assert one.videos == ((str(folder_root / "test/left/left_1.mp4"), 3),) and len(one.classes) == 4


def test_no_usable_video_and_missing_root_are_errors(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no usable video"):
        build_index(DataSpec(format="folder", root=str(tmp_path)), "train")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_index(DataSpec(format="folder", root=str(tmp_path / "nope")), "train")
    with pytest.raises(FileNotFoundError, match="classInd.txt"):
        build_index(DataSpec(format="ucf101", root=str(tmp_path)), "train")
