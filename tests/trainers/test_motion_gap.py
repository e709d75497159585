"""The synthetic motion benchmark separates 2D from 3D networks, as the papers' datasets do.

Slow (a few minutes on 2 cores): `pytest -m slow tests/trainers/test_motion_gap.py`.
"""
import pytest
import torch

from spaces import named
from trainers.datasets import DataSpec
from trainers.recipe import Recipe
from trainers.synth import write_synthetic_dataset
from trainers.trial import TrialConfig, run_trial


@pytest.mark.slow
def test_3d_learns_motion_that_per_frame_2d_cannot(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    write_synthetic_dataset(root, classes=8, videos_per_class=200, frames=48, size=(32, 44), seed=0)
    # The demo's recipe (search/presets/demo.yaml) with which rMC3 reached 98.8 % there. Learning on
    # this benchmark starts late and all at once; an LR drop before it starts can stop it for good.
    data = DataSpec(format="ucf101", root=str(root), resize=None, num_workers=0, batch_size=16, eval_clips=2,
                    cache=True)
    recipe = Recipe(epochs=12, lr=0.05, lr_step_epochs=10, eval_every=12, seed=0)
    # One thread, as in a one-CPU Ray trial: with two, the float sums differ, and whether and when
    # learning starts is that sensitive (a 2-thread run of the same seed stayed at chance).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    final = {}
    for name in ("f-r2d", "rmc3"):
        arch = named(name, width=8, frames=8, sampling_rate=2, crop=32)
        records = []
        run_trial(TrialConfig(arch, data, recipe), lambda r, s: records.append(r))
        final[name] = records[-1]["video@1"]
    torch.set_num_threads(threads)
    assert final["f-r2d"] < 0.25, final  # chance is 0.125: a single frame holds no class
    assert final["rmc3"] > 0.6, final  # motion is learnable with temporal convolutions
