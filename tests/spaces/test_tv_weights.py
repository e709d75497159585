"""torchvision's video ResNets ⇄ starch, checked against real torchvision key names, shapes and outputs.

The fixtures (tests/fixtures/torchvision/*.json) were written by torchvision 0.29.1 itself
(tests/fixtures/make_torchvision_fixture.py, in a separate venv): each holds the state-dict keys and
shapes in order and the logits of one clip with every tensor filled deterministically from its name
and shape. Here the same tensors are rebuilt from the fixture alone, converted into starch's model,
and must give the same logits; the reverse conversion must give torchvision's exact keys and shapes.
"""

import json
from pathlib import Path

import pytest
import torch

from spaces import build, cost, named
from spaces.tv_weights import (
    TORCHVISION_MODELS,
    check_convertible,
    from_torchvision,
    key_table,
    to_torchvision,
    torchvision_name,
)
from tests.fixtures.make_torchvision_fixture import clip_input, fill

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "torchvision"


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.mark.parametrize("tv_name", sorted(TORCHVISION_MODELS))
def test_torchvision_weights_give_torchvision_logits_in_starch(tv_name):
    fx = load_fixture(tv_name)
    keys = [(k, tuple(s)) for k, s in fx["keys"]]
    spec = named(TORCHVISION_MODELS[tv_name])
    assert cost(spec).params == fx["params"]
    model = build(spec).eval()
    model.load_state_dict(from_torchvision(fill(keys), spec), strict=True)
    with torch.no_grad():
        logits = model(clip_input()).flatten()
    expected = torch.tensor(fx["logits"])
    assert expected.std() > 0.3  # the check is not vacuous: logits are far from 0 and differ
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("tv_name", sorted(TORCHVISION_MODELS))
def test_starch_state_dict_becomes_torchvision_keys_and_shapes_in_order(tv_name):
    fx = load_fixture(tv_name)
    spec = named(TORCHVISION_MODELS[tv_name], width=64)
    ours = build(spec).state_dict()
    assert [r[0] for r in key_table(spec)] == list(ours)  # the table walks starch's modules in order
    theirs = to_torchvision(ours, spec)
    assert [[k, list(v.shape)] for k, v in theirs.items()] == fx["keys"]
    back = from_torchvision(theirs, spec)
    assert all(back[k] is ours[k] for k in ours)
    assert torchvision_name(spec) == tv_name


def test_paper_r2plus1d_is_not_torchvision_r2plus1d():
    paper, tv = named("r2plus1d_18"), named("r2plus1d_18_tv")
    assert cost(paper).params == 33_370_839 and cost(tv).params == load_fixture("r2plus1d_18")["params"]
    with pytest.raises(ValueError, match="2plus1d-tv"):
        check_convertible(paper)
    assert torchvision_name(paper) is None


def test_wrong_spec_or_state_is_named():
    state = {k: torch.empty(s, device="meta") for k, s in load_fixture("r3d_18")["keys"]}  # shapes only
    with pytest.raises(
        ValueError, match=r"layer2.0.conv1.0.weight has shape \[128, 64, 3, 3, 3\], the spec needs \[128, 64, 1, 3, 3\]"
    ):
        from_torchvision(state, named("mc3"))  # same keys as r3d_18, 2D shapes from conv3_x on
    with pytest.raises(ValueError, match="missing key"):
        from_torchvision(state, named("r2plus1d_18_tv"))
    with pytest.raises(ValueError, match=r"fc.weight has shape \[400, 512\], the spec needs \[10, 512\]"):
        from_torchvision(state, named("r3d_18", num_classes=10))
    with pytest.raises(ValueError, match="block='bottleneck'"):
        check_convertible(named("p3d_a_50"))
