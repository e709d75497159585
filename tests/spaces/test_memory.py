"""spaces.memory: the predicted peak of a training step, its parts, and `starch describe --batch`."""

import json

import pytest

from search.cli import main
from spaces import cost, named
from spaces.memory import memory

TINY = dict(width=4, frames=4, crop=32, num_classes=5)


def test_parts_add_up_and_scale_with_batch():
    spec = named("r3d_18", **TINY)
    one, two, four = (memory(spec, b) for b in (1, 2, 4))
    P = cost(spec).params
    assert one.grads == one.optimizer == 4 * P and one.params >= 4 * P
    assert four.saved - two.saved == 2 * (two.saved - one.saved)  # activations are linear in the batch
    assert two.saved > cost(spec).activation_bytes(2)  # ReLU outputs and the clip come on top of conv + BN
    assert (
        one.params + one.optimizer + one.saved
        <= one.peak
        <= one.params + one.grads + one.optimizer + one.saved + one.transient
    )
    half = memory(spec, 4, "bf16")
    assert half.saved < four.saved and half.peak < four.peak


def test_measured_peak_is_within_15_percent():
    pytest.importorskip("torch.distributed._tools.mem_tracker")
    from tests.benchmarks.test_memory_prediction import measure_peak

    # P3D: bottlenecks, two-branch blocks and the stem max-pool's int64 indices (the benchmark does 10 networks)
    spec = named("p3d_50", width=4, frames=4, crop=32, num_classes=5, blocks=(1, 1, 1, 1))
    predicted, measured = memory(spec, 2).peak, measure_peak(spec, 2)
    assert abs(predicted / measured - 1) < 0.15, (predicted, measured)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="precision 'int8' is not valid; valid: fp32, bf16, fp16"):
        memory(named("r3d_18"), 2, "int8")
    with pytest.raises(ValueError, match="batch must be an integer >= 1, got 0"):
        memory(named("r3d_18"), 0)


def test_describe_prints_and_json_has_the_memory(capsys):
    assert main(["describe", "r3d_18", "--batch", "16", "--precision", "bf16"]) == 0
    m = memory(named("r3d_18"), 16, "bf16")
    assert f"training step, batch 16, bf16: peak {m.peak / 1024**3:.2f} GiB predicted" in capsys.readouterr().out
    assert main(["describe", "r3d_18", "--batch", "16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["memory"] == memory(named("r3d_18"), 16).to_dict()
