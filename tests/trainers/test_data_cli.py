"""`starch data check` and `starch data synth`, through the real CLI entry point."""

import subprocess
import sys
import types

import pytest

from tests.decode_faults import AbortGood3, server
from tests.videos import DECODER_PARAMS
from trainers.data import decode_process

cli = pytest.importorskip("search.cli", reason="search.cli needs spaces.describe_cli")


def test_check_clean_dataset_reports_counts_and_ranges(ucf_root, capsys):
    assert cli.main(["data", "check", "ucf101", str(ucf_root), "--split", "2"]) == 0
    out = capsys.readouterr().out
    assert "3 classes" in out
    assert "train: 9 videos listed, 9 usable, 0 unusable" in out
    assert "test : 3 videos listed, 3 usable, 0 unusable" in out
    assert "frames per video: min 24, median 24, max 24" in out and "fps: 25 .. 25" in out
    assert "32x44" in out


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
def test_check_lists_every_unusable_file_and_writes_bad_list(bad_root, tmp_path, capsys, monkeypatch, decoder):
    monkeypatch.setattr(decode_process, "SERVER", server(AbortGood3))  # a decoder crash must not end the scan
    bad_list = tmp_path / "bad.txt"
    code = cli.main(
        ["data", "check", "folder", str(bad_root), "--subset", "train", "--bad-list", str(bad_list), "--workers", "2"]
        + ["--decoder", decoder]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "train: 9 videos listed, 4 usable, 5 unusable" in out  # the 3-frame video is usable
    lines = bad_list.read_text().splitlines()
    names = sorted(line.split("\t")[0].rsplit("/", 1)[1] for line in lines)
    assert names == ["good_3.mp4", "half.avi", "half.mp4", "random.avi", "zero.mp4"]
    assert any("good_3.mp4\tdecoder process died (killed by SIGABRT)" in line for line in lines)
    assert "zero.mp4: empty file (0 bytes)" in out
    assert "frames per video: min 3, median 32, max 32" in out


def test_check_missing_videos_are_unusable(ucf_root, tmp_path, capsys):
    import shutil

    ann = tmp_path / "ann"
    shutil.copytree(ucf_root / "ucfTrainTestlist", ann)
    with open(ann / "testlist01.txt", "a") as f:
        f.write("Basketball/v_Basketball_g77_c01.avi\n")
    code = cli.main(["data", "check", "ucf101", str(ucf_root), "--annotation-root", str(ann), "--subset", "test"])
    out = capsys.readouterr().out
    assert code == 1 and "v_Basketball_g77_c01.avi: missing" in out


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert cli.main(["data", "check", "ucf101", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("starch: error: ") and "does not exist" in err and err.count("\n") == 1


def test_check_as_a_subprocess(folder_root):
    proc = subprocess.run(
        [sys.executable, "-m", "search.cli", "data", "check", "folder", str(folder_root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 classes" in proc.stdout and "test : 4 videos listed, 4 usable" in proc.stdout


def test_synth_passes_its_arguments(monkeypatch, tmp_path, capsys):
    calls = []
    fake = types.ModuleType("trainers.data.synth")
    fake.write_synthetic_dataset = lambda out, **kw: calls.append((out, kw)) or {"classes": ["Left1", "Right1"]}
    monkeypatch.setitem(sys.modules, "trainers.data.synth", fake)
    code = cli.main(
        [
            "data",
            "synth",
            str(tmp_path / "s"),
            "--classes",
            "4",
            "--videos-per-class",
            "3",
            "--frames",
            "16",
            "--size",
            "24x32",
            "--seed",
            "7",
            "--level",
            "3",
        ]
    )
    assert code == 0
    expected = dict(classes=4, videos_per_class=3, frames=16, size=(24, 32), seed=7, level=3)
    assert calls == [(str(tmp_path / "s"), expected)]
    assert "Left1, Right1" in capsys.readouterr().out
    assert cli.main(["data", "synth", str(tmp_path / "s"), "--size", "big"]) == 2


def test_synth_then_check_end_to_end(tmp_path, capsys):
    pytest.importorskip("trainers.data.synth")
    out = tmp_path / "synth"
    assert cli.main(["data", "synth", str(out), "--classes", "4", "--videos-per-class", "4", "--frames", "12"]) == 0
    assert cli.main(["data", "check", "ucf101", str(out)]) == 0
    assert "4 classes" in capsys.readouterr().out


def test_help_has_examples(capsys):
    for command in (["data", "check", "--help"], ["data", "synth", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(command)
        assert "examples:" in capsys.readouterr().out
