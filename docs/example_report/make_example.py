"""Regenerate this folder: a small real search on two synthetic datasets, then `write_report`.

    python docs/example_report/make_example.py        # ~10 min on 2 CPUs; needs torch and Ray

Two synthetic motion datasets (trainers.data.synth: 4 directions × 200 videos, seeds 0 and 1) stand in
for UCF101 and HMDB51. Six small networks (width 8, 1 block per stage, 8×32×32 clips) train for 15
epochs (FIFO: every trial runs to the end, so the early-stopping fidelity table has every network),
plus R3D-18 at sampling rates 1 and 4 on the first dataset
(a one-axis sweep) and one network whose crop is too small, which errors on purpose so the report
shows how failures are counted. On this task a single frame carries no class information, so the
per-frame networks (f-R2D, R2D) should stay near chance (25 %).
Only the report is kept (PNG figures only, no SVG, to keep the folder small).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

NETWORKS = ("r3d_18", "mc3", "rmc3", "f-r2d", "r2d", "r2plus1d_18")
SMALL = dict(width=8, frames=8, crop=32, sampling_rate=2, blocks=(1, 1, 1, 1))


def run(storage: Path, name: str, root: Path, archs: list[dict]) -> Path:
    from ray import tune

    from trainers.data.datasets import DataSpec
    from trainers.ray_adapter import trainable

    data = DataSpec(
        format="ucf101", root=str(root), resize=None, num_workers=0, batch_size=32, eval_clips=3, cache=True
    ).to_dict()
    space = {
        "arch": tune.grid_search(archs),
        "data": data,
        "recipe": {"epochs": 15, "lr": 0.05, "schedule": "constant", "seed": 0},
    }
    tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(storage.resolve()), name=name, verbose=0),
    ).fit()
    return storage / name


def main() -> None:
    import ray

    from analysis import write_report
    from spaces import named
    from trainers.data.synth import write_synthetic_dataset

    work = Path(tempfile.mkdtemp(prefix="starch-example-"))
    os.environ["STARCH_CACHE"] = str(work / "cache")
    roots = {}
    for name, seed in (("synthetic-A", 0), ("synthetic-B", 1)):
        roots[name] = work / name
        write_synthetic_dataset(roots[name], classes=4, videos_per_class=200, frames=40, size=(32, 44), seed=seed)
    ray.init(num_cpus=2, log_to_driver=False)
    archs = [named(n, **SMALL).to_dict() for n in NETWORKS]
    sweep = [named("r3d_18", **{**SMALL, "sampling_rate": s}).to_dict() for s in (1, 4)]
    broken = {**named("mc3", **SMALL).to_dict(), "crop": 8}
    os.chdir(work)  # the report names the runs by these relative paths
    run(Path("runs"), "synthetic-A", roots["synthetic-A"], archs + sweep + [broken])
    run(Path("runs"), "synthetic-B", roots["synthetic-B"], archs)
    ray.shutdown()
    for old in ("figures", "tables"):
        shutil.rmtree(HERE / old, ignore_errors=True)
    write_report(
        ["runs/synthetic-A", "runs/synthetic-B"],
        HERE,
        "video@1",
        datasets=["synthetic-A", "synthetic-B"],
        formats=("png",),
    )
    shutil.rmtree(work)
    print(f"wrote {HERE / 'report.md'}")


if __name__ == "__main__":
    main()
