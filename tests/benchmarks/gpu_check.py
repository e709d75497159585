"""The GPU check: what no CPU test can show, run with one command on a machine with CUDA.

    PYTHONPATH=$PWD python -m tests.benchmarks.gpu_check          # prints the tables; exit 1 names a failed check
    PYTHONPATH=$PWD pytest -m benchmark -s tests/benchmarks/gpu_check.py   # the same; skipped without CUDA

It writes a tiny synthetic dataset (4 classes × 16 videos) and runs real `starch search`es on a
local Ray that sees this machine's GPUs:

    context   the memory one process holds on the GPU outside torch's allocator (CUDA context and
              the kernels a convolution and a matmul load), against spaces.memory.CUDA_CONTEXT_GB
    packed    gpus_per_trial: auto, r3d_18 and r2plus1d_18 at k = 8 (16×112², batch 8), at most 2
              trials per GPU and 2 trials in all: both share GPU 0 (with two GPUs or more the spread
              gives each its own GPU, which the check then expects instead)
    parallel  (2 GPUs or more) one r3d_18 trial on 2 data-parallel workers, one GPU each

and prints per trial: GPUs seen, precision and why, share, allocator limit, predicted memory,
measured peak allocated and reserved (last epoch), clips/s, the peak probe and efficiency.

Expected output (what each check asserts):
    context   measured GiB <= CUDA_CONTEXT_GB (0.5); a larger figure means the per-process overhead
              (resources.gpu_process_overhead_gb, 1.0) should grow
    packed    2 trials completed; precision bf16 on compute capability >= 8.0, fp16 below (the reason
              names the capability); on one GPU both trials on the same CUDA_VISIBLE_DEVICES with
              share 0.5 and measured allocated <= the allocator limit (with 2 GPUs or more: one GPU
              each, share 1); predicted / measured allocated printed (spaces.memory's accuracy on
              this GPU); 0 < efficiency <= 1
    parallel  1 trial completed with workers = 2, each epoch's record from 2 GPUs
"""

from __future__ import annotations

import json
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch

GiB = 1024**3


def context_gb() -> float:
    """GiB this process holds on GPU 0 beyond torch's reserved memory, after a conv and a matmul
    (an upper bound when other processes use the GPU too)."""
    x = torch.randn(2, 3, 8, 32, 32, device="cuda")
    torch.nn.functional.conv3d(x, torch.randn(8, 3, 3, 3, 3, device="cuda"))
    torch.mm(torch.randn(64, 64, device="cuda"), torch.randn(64, 64, device="cuda"))
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info(0)
    return (total - free - torch.cuda.memory_reserved(0)) / GiB


def experiment(root: Path, storage: Path, name: str, networks: list[str], resources: str) -> Path:
    text = textwrap.dedent(f"""
        name: {name}
        space:
          network: {json.dumps(networks)}
          frames: 16
          sampling_rate: 1
          crop: 112
          width: 8
        data:
          format: ucf101
          root: {root}
          resize: [128, 171]
          num_workers: 2
          batch_size: 8
          eval_clips: 2
        schedule:
          epochs: 2
          lr: 0.01
        resources:
        {textwrap.indent(textwrap.dedent(resources).strip(), "  ")}
        cluster:
          storage: {storage}
        """)
    path = storage.parent / f"{name}.yaml"
    path.write_text(text)
    return path


def last_records(run: Path) -> list[dict]:
    out = []
    for trial in sorted(p for p in run.iterdir() if (p / "result.json").exists()):
        lines = [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line.strip()]
        if lines:
            out.append({**lines[-1], "_first_started": lines[0]["started_at"]})
    return out


def table(title: str, recs: list[dict]) -> None:
    print(f"\n{title}")
    cols = [
        ("network", "arch_name", "{}"),
        ("GPUs seen", "cuda_visible_devices", "{}"),
        ("workers", "workers", "{}"),
        ("precision", "precision", "{}"),
        ("share", "gpus", "{:g}"),
        ("limit GiB", "gpu_memory_limit_gb", "{:.2f}"),
        ("predicted GiB", "predicted_memory_gb", "{:.3f}"),
        ("allocated GiB", "measured_memory_gb", "{:.3f}"),
        ("reserved GiB", "measured_reserved_gb", "{:.3f}"),
        ("clips/s", "train_clips_per_s", "{:.1f}"),
        ("peak TFLOP/s", "peak_gflops_per_s", "{:.1f}"),
        ("efficiency", "efficiency", "{:.1%}"),
        ("status", "status", "{}"),
    ]
    print(" | ".join(c[0] for c in cols))
    for r in recs:
        cells = []
        for _, key, fmt in cols:
            v = r.get(key)
            if key == "peak_gflops_per_s" and v is not None:
                v = v / 1e3
            cells.append("-" if v is None else fmt.format(v))
        print(" | ".join(cells))
    for r in recs:
        print(f"  {r.get('arch_name')}: {r.get('precision_reason')}")


def run_checks(workdir: Path) -> list[str]:
    """Run the searches; return the failed checks (empty: all held)."""
    import ray

    from search.cli import main
    from spaces.memory import CUDA_CONTEXT_GB
    from trainers.data.synth import write_synthetic_dataset

    failed: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(f"  [{'ok' if ok else 'FAILED'}] {what}")
        if not ok:
            failed.append(what)

    gpus = torch.cuda.device_count()
    major, minor = torch.cuda.get_device_capability(0)
    print(f"{gpus} GPU(s): {torch.cuda.get_device_name(0)}, compute capability {major}.{minor}")
    ctx = context_gb()
    print(f"\ncontext: {ctx:.2f} GiB outside torch's allocator (assumed: CUDA_CONTEXT_GB = {CUDA_CONTEXT_GB})")
    check(ctx <= CUDA_CONTEXT_GB, f"CUDA context {ctx:.2f} GiB <= {CUDA_CONTEXT_GB} GiB")

    root = workdir / "synthetic"
    write_synthetic_dataset(root, classes=4, videos_per_class=16, frames=24, size=(128, 171), seed=0)
    storage = workdir / "runs"
    storage.mkdir()

    packed = experiment(
        root,
        storage,
        "packed",
        ["r3d_18", "r2plus1d_18"],
        "gpus_per_trial: auto\nmax_trials_per_gpu: 2\ncpus_per_trial: 2",
    )
    code = main(["search", str(packed), "--no-report"])
    ray.shutdown()
    recs = last_records(storage / "packed")
    table("packed (gpus_per_trial: auto)", recs)
    check(code == 0 and len(recs) == 2 and all(r["status"] == "completed" for r in recs), "2 packed trials completed")
    want = "bf16" if major >= 8 else "fp16"
    check(all(r["precision"] == want for r in recs), f"precision {want} on compute capability {major}.{minor}")
    check(all(f"{major}.{minor}" in (r.get("precision_reason") or "") for r in recs), "the reason names the capability")
    same_gpu = len({r.get("cuda_visible_devices") for r in recs}) == 1
    check(same_gpu == (gpus == 1), "both on GPU 0" if gpus == 1 else "spread: one trial per GPU")
    share = 0.5 if gpus == 1 else 1.0  # 2 trials: spread over 2 GPUs, else 2 on one
    check(all(r.get("gpus") == share for r in recs), f"each asked for {share:g} GPU")
    if share < 1:
        check(
            all(r.get("measured_memory_gb", 1e9) <= r.get("gpu_memory_limit_gb", 0) for r in recs),
            "measured allocated <= the allocator limit",
        )
    for r in recs:
        if r.get("measured_memory_gb"):
            print(
                f"  {r['arch_name']}: predicted / measured allocated = {r['predicted_memory_gb'] / r['measured_memory_gb']:.2f}"
            )
    check(all(0 < r.get("efficiency", 0) <= 1 for r in recs), "0 < efficiency <= 1")

    if gpus >= 2:
        parallel = experiment(
            root, storage, "parallel", ["r3d_18"], "gpus_per_trial: 1\nworkers_per_trial: 2\ncpus_per_trial: 2"
        )
        code = main(["search", str(parallel), "--no-report"])
        ray.shutdown()
        recs = last_records(storage / "parallel")
        table("data parallel (2 workers, 1 GPU each)", recs)
        check(
            code == 0 and len(recs) == 1 and recs[0]["status"] == "completed" and recs[0]["workers"] == 2,
            "1 data-parallel trial completed on 2 workers",
        )
    else:
        print("\ndata parallel: skipped (needs 2 GPUs)")
    return failed


@pytest.mark.benchmark
@pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU check needs CUDA")
def test_gpu_check(tmp_path):
    assert run_checks(tmp_path) == []


if __name__ == "__main__":
    if not torch.cuda.is_available():
        print("gpu_check: skipped, no CUDA device")
        sys.exit(0)
    with tempfile.TemporaryDirectory(prefix="starch-gpu-check-") as d:
        failed = run_checks(Path(d))
    print("\nall checks held" if not failed else f"\n{len(failed)} check(s) failed: {'; '.join(failed)}")
    sys.exit(1 if failed else 0)
