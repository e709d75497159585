"""A run in a bucket, for real: an S3-compatible server (moto's, on a loopback port) stands in for
AWS, MinIO or Ceph, and the run goes through the same pyarrow / Ray Tune path a cluster uses.

Drivers run in child processes with the endpoint and credentials in their environment, each starting
its own local Ray (the session's cluster was started before these variables existed, and its workers
would not see them — on a real cluster every node needs them, see the README).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from search.cli import main
from tests.search.test_failures import killable_tpe_experiment, wait_for

BUCKET = "starch-test"
pytest.importorskip("moto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """An S3 endpoint on loopback with an empty bucket; yields the environment a client needs."""
    import boto3

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def up():
        try:
            client.list_buckets()
            return True
        except Exception:
            return False

    try:
        assert wait_for(up, timeout=60), f"moto's server did not start: {log.read_text()[-2000:]}"
        client.create_bucket(Bucket=BUCKET)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def s3_env(s3, monkeypatch):
    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    return s3


def starch(*argv, env, **popen) -> subprocess.Popen:
    """`starch ARGV` in a child process that starts its own local Ray (no --address)."""
    return subprocess.Popen(
        [sys.executable, "-m", "search.cli", *argv],
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def bucket_files(uri: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(uri)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return []
    return [i.path[len(root) :].lstrip("/") for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))]


def trials_file(uri: str) -> list[dict]:
    from analysis.runfolder import TRIALS_FILE, read_text

    return json.loads(read_text(uri, TRIALS_FILE) or "[]")


def test_a_search_into_a_bucket_is_read_and_reported_by_its_uri(s3_env, make_experiment, tmp_path, capsys, monkeypatch):
    from analysis import load

    path = make_experiment(name="bucketed")
    uri = f"s3://{BUCKET}/runs/bucketed"
    driver = starch("search", str(path), "--storage", f"s3://{BUCKET}/runs", "--no-report", env=s3_env)
    out, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, out[-3000:]

    files = bucket_files(uri)
    assert {"starch_experiment.json", "starch_trials.json", "starch_infeasible.json"} <= set(files)
    assert sum(f.endswith("/result.json") for f in files) == 3
    assert any("/checkpoint_" in f for f in files)  # Tune's checkpoints went to the bucket too
    assert not (tmp_path / "runs").exists()  # nothing was written to the experiment's local storage

    monkeypatch.chdir(tmp_path)
    assert main(["status", uri]) == 0
    assert f"{uri}: 3 trial(s): 3 completed" in capsys.readouterr().out
    trials = load([uri])
    assert len(trials) == 3 and (trials["status"] == "completed").all()
    assert trials["final_video@1"].notna().all()
    assert main(["report", uri]) == 0
    assert (tmp_path / "bucketed-report" / "report.md").is_file()
    # `starch resume URI` runs in the slow test below (a driver killed mid-run)


def test_a_missing_bucket_is_named_before_ray_starts(s3_env, make_experiment, capsys):
    import ray

    path = make_experiment(name="nobucket")
    was_up = ray.is_initialized()
    assert main(["search", str(path), "--storage", "s3://no-such-bucket/runs", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "cluster.storage 's3://no-such-bucket/runs'" in err and "bucket 'no-such-bucket' does not exist" in err
    assert "AWS_ENDPOINT_URL" in err
    assert ray.is_initialized() == was_up  # checked before any Ray


@pytest.mark.slow
def test_a_driver_killed_mid_run_resumes_from_the_bucket(s3_env, make_experiment):
    path = killable_tpe_experiment(make_experiment, "killed-s3")
    uri = f"s3://{BUCKET}/runs/killed-s3"
    driver = starch(
        "search", str(path), "--storage", f"s3://{BUCKET}/runs", "--no-report", env=s3_env, start_new_session=True
    )
    try:
        checkpoints = lambda: sum("/checkpoint_" in f and f.endswith(".pt") for f in bucket_files(uri))  # noqa: E731
        assert wait_for(lambda: checkpoints() >= 2, timeout=300, every=1.0), "no checkpoint reached the bucket"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    time.sleep(2)
    # The race the local killed-driver test plays (a snapshot listing a trial the search generator has
    # not counted), played here in the bucket: `starch resume` must catch the counter up there too.
    import pyarrow.fs as pafs
    import ray.cloudpickle as cloudpickle

    fs, root = pafs.FileSystem.from_uri(uri)
    generator = sorted(f for f in bucket_files(uri) if f.startswith("search_gen_state-"))[-1]
    with fs.open_input_stream(f"{root}/{generator}") as src:
        state = cloudpickle.loads(src.read())
    state["counter"] -= 1
    with fs.open_output_stream(f"{root}/{generator}") as out:
        out.write(cloudpickle.dumps(state))
    resumed = starch("resume", uri, "--no-report", env=s3_env)
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, out[-3000:]
    trials = trials_file(uri)
    assert len(trials) == 4, f"expected the 4 sampled trials once each, got {[t['trial_id'] for t in trials]}"
    assert all(t["status"] == "TERMINATED" and t["epoch"] == 3 for t in trials)
    assert sum(f.endswith("/result.json") for f in bucket_files(uri)) == 4
