"""Wrong input stops before Ray starts: one line naming the file, field or value, exit 2.

Every case here ran to the end (or was silently accepted) before the checks existed."""

import subprocess
import sys
import time

import pytest

from search.cli import main
from search.config import load_experiment

MINIMAL = "name: x\nspace: {network: r3d_18, width: 4, crop: 32}\ndata: {format: ucf101, root: /d}\n"


def write(tmp_path, text, name="exp.yaml", mode="w"):
    path = tmp_path / name
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return path


def error_of(capsys, argv) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err.strip()


def test_a_key_given_twice_is_an_error_not_last_wins(tmp_path):
    path = write(tmp_path, MINIMAL + "schedule: {lr: 0.1}\nschedule: {epochs: 3}\n")
    with pytest.raises(ValueError, match=r"exp.yaml:5:1: not valid YAML: duplicate key 'schedule' \(first on line 4"):
        load_experiment(path)


@pytest.mark.parametrize("text", ["1e-3", "1E-3", "5e+2", ".5e-2"])
def test_exponent_floats_are_numbers_in_files_and_in_set(tmp_path, text):
    exp = load_experiment(write(tmp_path, MINIMAL + f"schedule: {{lr: {text}}}\n"))
    assert exp.schedule.lr == float(text)
    exp = load_experiment(write(tmp_path, MINIMAL, "b.yaml"), overrides=None)
    from search.search_cli import overrides_from_args

    class Args:
        data = name = storage = address = None
        set = [f"schedule.lr={text}"]

    assert overrides_from_args(Args())["schedule.lr"] == float(text)


def test_a_file_that_is_not_utf8_or_not_a_mapping_is_named(tmp_path, capsys):
    code, err = error_of(
        capsys, ["search", str(write(tmp_path, b"name: x\n\xff\xfe\x00garbage", "bin.yaml")), "--dry-run"]
    )
    assert code == 2 and "bin.yaml: not UTF-8 text" in err and "\n" not in err
    code, err = error_of(capsys, ["search", str(write(tmp_path, "- a\n- b\n", "list.yaml")), "--dry-run"])
    assert code == 2 and "list.yaml: an experiment file must be a mapping" in err


def test_a_budget_no_width_can_meet_is_an_error_with_the_smallest_size(tmp_path, capsys):
    code, err = error_of(capsys, ["describe", "mc3", "--budget", "1000"])
    assert code == 2 and "below the smallest MC3 network (k = 1 has 6,987 params); valid: budget >= 6,987" in err
    path = write(tmp_path, "name: x\nspace: {network: [r3d_18, mc3], budget: 1000}\ndata: {format: ucf101, root: /d}\n")
    with pytest.raises(ValueError, match="space.budget 1000 is below the smallest R3D-18 network"):
        load_experiment(path)


@pytest.mark.parametrize("spelling", ["r3d_18", "r3d-18", "R3D-18", "R3D_18"])
def test_torchvision_and_paper_spellings_name_the_same_network(spelling, tmp_path):
    from spaces import named

    assert named(spelling) == named("r3d_18")
    assert named("r2plus1d-34") == named("r2plus1d_34") and named("p3d-199") == named("p3d_199")
    assert named("R(2+1)D-18") == named("r2plus1d_18") and named("F-R2D") == named("f-r2d")


def test_an_unknown_network_suggests_the_nearest(capsys):
    code, err = error_of(capsys, ["describe", "r3d_81"])
    assert code == 2 and "unknown network 'r3d_81'; did you mean r3d_18" in err


def test_resize_is_checked_against_each_trials_own_crop(tmp_path):
    ok = write(
        tmp_path,
        "name: x\nspace: {network: r3d_18, crop: 32, width: 4}\ndata: {format: ucf101, root: /d, resize: [48, 64]}\n",
    )
    assert load_experiment(ok).to_data().resize == (48, 64)  # refused before: checked against crop 112
    bad = write(
        tmp_path,
        "name: x\nspace: {network: r3d_18, crop: [32, 112], width: 4}\n"
        "data: {format: ucf101, root: /d, resize: [36, 48]}\n",
        "bad.yaml",
    )
    with pytest.raises(
        ValueError,
        match=r"bad.yaml: data.resize \(36, 48\) is smaller than crop 112.*"
        r"crops \[32, 112\]",
    ):
        load_experiment(bad)


def test_a_resize_decord_cannot_scale_to_is_decoded_another_way(synth_root):
    """decord 0.6 fails on 44-px-wide mp4s scaled to 48 px wide ("size must exactly match")."""
    from trainers.data.video import DecordReader

    video = next((synth_root / "UCF-101").rglob("*.mp4"))
    with DecordReader(video, resize=(36, 48)) as reader:
        frames = reader.get_frames([0, 3, 5])
    assert frames.shape == (3, 36, 48, 3) and frames.std() > 0
    with DecordReader(video, resize=(36, 47)) as reader:  # decord scales this one itself
        assert reader.get_frames([0]).shape == (1, 36, 47, 3)


def test_a_missing_dataset_root_stops_the_dry_run_and_the_run_before_ray(tmp_path, capsys):
    path = write(
        tmp_path,
        MINIMAL.replace("root: /d", f"root: {tmp_path / 'nowhere'}") + f"cluster: {{storage: {tmp_path / 'runs'}}}\n",
    )
    code, err = error_of(capsys, ["search", str(path), "--dry-run"])
    assert code == 2 and f"data.root '{tmp_path / 'nowhere'}' does not exist; format ucf101 expects ROOT/UCF-101" in err
    started = time.time()
    code, err = error_of(capsys, ["search", str(path)])  # no Ray is started: seconds, not minutes
    assert code == 2 and "does not exist" in err and time.time() - started < 20
    assert not (tmp_path / "runs").exists()


def test_a_root_without_split_files_names_the_expected_layout(tmp_path, capsys):
    (tmp_path / "data" / "UCF-101").mkdir(parents=True)
    path = write(tmp_path, MINIMAL.replace("root: /d", f"root: {tmp_path / 'data'}"))
    code, err = error_of(capsys, ["search", str(path), "--dry-run"])
    assert code == 2 and "classInd.txt not found" in err and "expects ROOT/UCF-101/<Class>/<video>.avi" in err


@pytest.mark.parametrize(
    "gpus, expected", [("1", "a trial needs 1 GPU(s)"), ("auto", "auto but the Ray cluster has no GPU")]
)
def test_gpus_the_local_machine_lacks_are_refused_in_the_dry_run(tmp_path, capsys, synth_root, gpus, expected):
    path = write(
        tmp_path,
        MINIMAL.replace("root: /d", f"root: {synth_root}, resize: null") + f"resources: {{gpus_per_trial: {gpus}}}\n",
    )
    code, err = error_of(capsys, ["search", str(path), "--dry-run"])
    assert code == 2 and expected in err and "--set resources.gpus_per_trial=0" in err
    assert main(["search", str(path), "--dry-run", "--address", "auto"]) == 0  # a cluster may have them


def test_the_dry_run_solves_widths_for_the_datasets_classes(tmp_path, capsys, synth_root):
    path = write(
        tmp_path,
        "name: x\nspace: {network: r3d_18, budget: 0.13M, crop: 32, num_classes: 101}\n"
        f"data: {{format: ucf101, root: {synth_root}, resize: null}}\n",
    )
    assert main(["search", str(path), "--dry-run"]) == 0
    with_data = capsys.readouterr().out
    assert main(["search", str(path), "--dry-run", "--set", "data.root=<--data>"]) == 0
    without = capsys.readouterr().out
    assert "note: no dataset given" in without and with_data.splitlines()[-1] != without.splitlines()[-1]


@pytest.fixture
def ucf_copy(synth_root, tmp_path):
    import shutil

    root = tmp_path / "ucf"
    shutil.copytree(synth_root, root)
    return root


def _edit_trainlist(root, line_no, new_line):
    path = root / "ucfTrainTestlist" / "trainlist01.txt"
    lines = path.read_text().splitlines()
    lines[line_no - 1] = new_line
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_out_of_range_label_is_found_by_data_check_and_the_dry_run(ucf_copy, tmp_path, capsys):
    first = (ucf_copy / "ucfTrainTestlist" / "trainlist01.txt").read_text().splitlines()[2].split()[0]
    _edit_trainlist(ucf_copy, 3, f"{first} 9")  # 4 classes: 9 crashed training with an IndexError
    code, err = error_of(capsys, ["data", "check", "ucf101", str(ucf_copy)])
    assert code == 2 and "trainlist01.txt:3: label '9' is not a class number of classInd.txt (valid: 1..4)" in err
    path = write(tmp_path, MINIMAL.replace("root: /d", f"root: {ucf_copy}, resize: null"))
    code, err = error_of(capsys, ["search", str(path), "--dry-run"])
    assert code == 2 and "trainlist01.txt:3: label '9'" in err


def test_a_label_that_contradicts_the_class_folder_is_refused(ucf_copy, capsys):
    first = (ucf_copy / "ucfTrainTestlist" / "trainlist01.txt").read_text().splitlines()[0].split()
    wrong = 1 + int(first[1]) % 4
    _edit_trainlist(ucf_copy, 1, f"{first[0]} {wrong}")
    code, err = error_of(capsys, ["data", "check", "ucf101", str(ucf_copy)])
    assert code == 2 and f"trainlist01.txt:1: label {str(wrong)!r} is" in err and "but the video is in folder" in err


@pytest.mark.parametrize("entry", ["../../../etc/passwd 1", "/etc/passwd 1", "Left1/../../../x.mp4 1"])
def test_split_entries_outside_the_dataset_are_refused_with_the_line(ucf_copy, capsys, entry):
    _edit_trainlist(ucf_copy, 2, entry)
    code, err = error_of(capsys, ["data", "check", "ucf101", str(ucf_copy)])
    assert code == 2 and "trainlist01.txt:2:" in err and "is outside the video folder" in err


def test_csv_rows_that_climb_out_of_their_folder_are_refused(tmp_path):
    from trainers.data.datasets import DataSpec, build_index

    (tmp_path / "train.csv").write_text("path,label\na.mp4,x\n../secret.mp4,y\n")
    with pytest.raises(ValueError, match=r"train.csv:3: '../secret.mp4' is outside the video folder"):
        build_index(DataSpec(format="csv", root=str(tmp_path)), "train")


def test_data_check_flags_short_videos_and_symlink_loops(ucf_copy, capsys):
    import os

    videos = sorted((ucf_copy / "UCF-101").rglob("*.mp4"))
    loop = videos[0]
    loop.unlink()
    os.symlink(loop.name, loop)  # points at itself
    assert main(["data", "check", "ucf101", str(ucf_copy)]) == 1
    out = capsys.readouterr().out
    assert f"{loop}: symlink loop" in out and "not on disk" not in out
    # the videos have 24 frames: clips of 16 at rate 2 need 31, so every other video is short
    assert main(["data", "check", "ucf101", str(ucf_copy), "--frames", "16", "--sampling-rate", "2"]) == 1
    out = capsys.readouterr().out
    assert f"{videos[1]}: short: 24 frames, one clip needs 31" in out
    assert main(["data", "check", "ucf101", str(ucf_copy), "--frames", "8", "--sampling-rate", "2"]) == 1
    assert "short:" not in capsys.readouterr().out  # 15 frames fit


def test_a_storage_that_is_a_file_or_not_writable_is_refused_before_ray(tmp_path, capsys, synth_root, monkeypatch):
    """Issue 27: the dry run accepted a storage path that is a file; the run started Ray and died
    with NotADirectoryError."""
    import os

    path = write(tmp_path, MINIMAL.replace("root: /d", f"root: {synth_root}, resize: null"))
    afile = tmp_path / "afile"
    afile.write_text("")
    for storage, said in [
        (afile, f"cluster.storage '{afile}' is a file, not a folder; give --storage a folder (created if missing)"),
        (afile / "runs", f"cluster.storage '{afile}/runs' lies under '{afile}', which is a file, not a folder"),
    ]:
        for extra in (["--dry-run"], []):
            code, err = error_of(capsys, ["search", str(path), "--storage", str(storage), *extra])
            assert code == 2 and said in err and "\n" not in err
    # root may write anywhere, so the permission is asked of os.access (a read-only folder for a user)
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    code, err = error_of(capsys, ["search", str(path), "--storage", str(tmp_path / "ro" / "runs"), "--dry-run"])
    assert code == 2 and f"'{tmp_path}' is not writable by this user" in err


def test_devices_fifos_and_sockets_listed_as_videos_are_refused_with_what_they_are(ucf_copy, tmp_path, capsys):
    """Issue 27: /dev/zero or a named pipe in a split list was "missing: not on disk" though it exists."""
    import os
    import socket

    listed = [line.split()[0] for line in (ucf_copy / "ucfTrainTestlist" / "trainlist01.txt").read_text().splitlines()]
    fifo, device, sock = (ucf_copy / "UCF-101" / rel for rel in listed[:3])
    for path in (fifo, device, sock):
        path.unlink()
    os.mkfifo(fifo)
    device.symlink_to("/dev/zero")
    server = socket.socket(socket.AF_UNIX)
    try:
        # bound by its name from its folder: a socket's path is limited to 107 bytes, which pytest's
        # temporary folders exceed in a fresh checkout's run (CI)
        here = os.getcwd()
        os.chdir(sock.parent)
        try:
            server.bind(sock.name)
        finally:
            os.chdir(here)
        assert sock.is_socket()
        assert main(["data", "check", "ucf101", str(ucf_copy)]) == 1
        out = capsys.readouterr().out
        assert f"{fifo}: a FIFO (named pipe), not a video file" in out
        assert f"{device}: a character device, not a video file" in out
        assert f"{sock}: a socket, not a video file" in out and "not on disk" not in out
        path = write(tmp_path, MINIMAL.replace("root: /d", f"root: {ucf_copy}, resize: null"))
        code, err = error_of(capsys, ["search", str(path), "--dry-run"])
        assert code == 2 and f"{fifo} (a FIFO (named pipe), not a video file)" in err
        assert f"{device} (a character device, not a video file)" in err and "not on disk" not in err
    finally:
        server.close()


@pytest.mark.parametrize("ray_address", ["session", "127.0.0.1:1"])
def test_without_address_starch_starts_its_own_ray(ray_cluster, ray_address):
    """Another Ray on the machine (the session's), or the address of a dead `ray start` head, used
    to be joined by the plain ray.init(num_cpus=…) (or to make it raise)."""
    import os

    address = ray_cluster.address if ray_address == "session" else ray_address
    code = (
        "from search.run import init_ray; init_ray(None, num_cpus=1); import ray; "
        "print('GCS', ray.get_runtime_context().gcs_address); ray.shutdown()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_ADDRESS": address},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    gcs = next(l.split()[1] for l in done.stdout.splitlines() if l.startswith("GCS"))
    assert gcs != ray_cluster.address and gcs != address


LISTEN_CODE = """
import os
from search.run import init_ray
init_ray(None, num_cpus=1)
import ray

@ray.remote
def f():
    return os.getpid()

ray.get(f.remote())

def children(pid):
    kids = {}
    for p in filter(str.isdigit, os.listdir('/proc')):
        try:
            ppid = int(open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1])
        except OSError:
            continue
        kids.setdefault(ppid, []).append(int(p))
    out, stack = set(), [pid]
    while stack:
        p = stack.pop(); out.add(p); stack += kids.get(p, [])
    return out

inodes = set()
for pid in children(os.getpid()):
    try:
        for fd in os.listdir(f'/proc/{pid}/fd'):
            link = os.readlink(f'/proc/{pid}/fd/{fd}')
            if link.startswith('socket:['):
                inodes.add(link[8:-1])
    except OSError:
        pass
for table in ('/proc/net/tcp', '/proc/net/tcp6'):
    for line in open(table).read().splitlines()[1:]:
        cols = line.split()
        if cols[3] == '0A' and cols[9] in inodes:  # LISTEN
            print('LISTEN', cols[1])
ray.shutdown()
"""


def _is_loopback(hex_address: str) -> bool:
    host = hex_address.split(":")[0]
    if len(host) == 8:  # IPv4, little-endian
        return host.endswith("7F")
    return host in ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


def test_the_local_ray_listens_on_the_loopback_only(ray_cluster):
    done = subprocess.run([sys.executable, "-c", LISTEN_CODE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    listening = [l.split()[1] for l in done.stdout.splitlines() if l.startswith("LISTEN")]
    assert len(listening) >= 3, done.stdout  # GCS, raylet, workers …
    assert all(_is_loopback(a) for a in listening), listening
