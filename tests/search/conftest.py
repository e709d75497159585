import textwrap
from pathlib import Path

import pytest


def tiny_experiment(tmp_path: Path, synth_root: Path, *, name: str = "tiny", body: str = "") -> Path:
    """A real but tiny experiment on the synthetic dataset: k = 4 networks, 32 px crops, 2 epochs."""
    text = textwrap.dedent(f"""
        name: {name}
        space:
          network: [r3d_18, f-r2d, mc3]
          frames: 8
          sampling_rate: 2
          crop: 32
          width: 4
          blocks: [1, 1, 1, 1]
        data:
          format: ucf101
          root: {synth_root}
          resize: null
          num_workers: 0
          batch_size: 8
          eval_clips: 2
        schedule:
          epochs: 2
          lr: 0.05
        resources:
          cpus_per_trial: 1
        cluster:
          storage: {tmp_path / "runs"}
        """) + textwrap.dedent(body)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def make_experiment(tmp_path, synth_root):
    return lambda **kw: tiny_experiment(tmp_path, synth_root, **kw)
