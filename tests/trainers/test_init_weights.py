"""schedule.init (torchvision state dicts and starch checkpoints in) and `starch export` (torchvision out)."""

import json

import pytest
import torch

from search.cli import main
from spaces import build, named
from spaces.tv_weights import from_torchvision
from tests.fixtures.make_torchvision_fixture import fill
from tests.spaces.test_tv_weights import load_fixture
from tests.trainers.test_trial import TINY, config
from trainers import checkpoint
from trainers.init_weights import initialise
from trainers.trial import run_trial


@pytest.fixture(scope="module")
def mc3_torchvision():
    """torchvision mc3_18's tensors (names and shapes from torchvision 0.29.1, values from `fill`)."""
    fx = load_fixture("mc3_18")
    return fill([(k, tuple(s)) for k, s in fx["keys"]]), fx


def test_torchvision_state_dict_initialises_and_the_classifier_is_replaced(mc3_torchvision, tmp_path, caplog):
    tv_state, _ = mc3_torchvision
    torch.save(tv_state, tmp_path / "mc3_18.pth")
    spec = named("mc3", num_classes=4)
    torch.manual_seed(0)
    model = build(spec)
    fresh_fc = model.fc.weight.detach().clone()
    caplog.set_level("INFO", logger="trainers")
    summary = initialise(model, spec, tmp_path / "mc3_18.pth")
    assert summary["init_source"] == "torchvision" and summary["init_replaced"] == ["fc.weight", "fc.bias"]
    assert summary["init_tensors"] == len(tv_state) - 2
    ours = from_torchvision(tv_state, named("mc3"))
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ours.items() if not k.startswith("fc."))
    assert torch.equal(model.fc.weight, fresh_fc) and model.fc.weight.shape == (4, 512)
    assert "classifier replaced (400 → 4 classes)" in caplog.text


def test_init_that_does_not_fit_names_the_tensor(mc3_torchvision, tmp_path):
    torch.save(mc3_torchvision[0], tmp_path / "mc3_18.pth")
    spec = named("mc3", width=32)
    with pytest.raises(ValueError, match=r"mc3_18.pth \(torchvision\) does not fit MC3 \(width 32\)"):
        initialise(build(spec), spec, tmp_path / "mc3_18.pth")
    with pytest.raises(FileNotFoundError, match="schedule.init: no file"):
        initialise(build(spec), spec, tmp_path / "missing.pth")


def test_trial_starts_from_a_starch_checkpoint_of_another_class_count(synth_root, tmp_path, monkeypatch):
    import trainers.trial

    source = build(named("r3d_18", **TINY, num_classes=7))
    checkpoint.save(tmp_path / "src", {"model": source.state_dict(), "epoch": 3})
    seen = {}  # what the training loop would be given (the loop itself is tested in test_trial.py)
    monkeypatch.setattr(trainers.trial, "fit", lambda model, **kw: seen.update(model=model, static=kw["static"]))
    run_trial(config(synth_root, epochs=1, init=str(tmp_path / "src")), lambda r, s: None)
    static, model = seen["static"], seen["model"]
    assert static["init_source"] == "starch checkpoint" and static["init_replaced"] == ["fc.weight", "fc.bias"]
    assert static["init_tensors"] == len(source.state_dict()) - 2 and static["init"].endswith("src")
    assert torch.equal(
        model.layers[3][0].convs[1].get_submodule("0").weight, source.layers[3][0].convs[1].get_submodule("0").weight
    )
    assert model.fc.weight.shape == (4, 64)
    seen.clear()
    run_trial(config(synth_root, epochs=1, init=str(tmp_path / "src")), lambda r, s: None, state={"epoch": 1})
    assert "init_source" not in seen["static"]  # a resumed trial keeps its own weights


def test_export_writes_torchvision_keys_of_the_newest_checkpoint(mc3_torchvision, tmp_path, capsys):
    tv_state, fx = mc3_torchvision
    spec = named("mc3")
    trial = tmp_path / "run" / "abc_MC3"
    for epoch in (1, 2):
        state = {k: v * epoch if v.is_floating_point() else v for k, v in from_torchvision(tv_state, spec).items()}
        checkpoint.save(trial / f"checkpoint_{epoch:06d}", {"model": state, "epoch": epoch})
    (trial / "result.json").write_text("".join(json.dumps({"epoch": e, "arch": spec.to_dict()}) + "\n" for e in (1, 2)))
    assert main(["export", str(trial), "--format", "torchvision", "--out", str(tmp_path / "mc3.pth")]) == 0
    assert "loads into torchvision.models.video.mc3_18(num_classes=400)" in capsys.readouterr().out
    written = torch.load(tmp_path / "mc3.pth", weights_only=True)
    assert [[k, list(v.shape)] for k, v in written.items()] == fx["keys"]
    assert torch.equal(written["layer4.1.conv2.0.weight"], 2 * tv_state["layer4.1.conv2.0.weight"])  # epoch 2


def test_train_cli_passes_init_to_the_recipe():
    from search.cli import build_parser
    from trainers.train_cli import config_from_args

    args = build_parser().parse_args(["train", "--arch", "mc3", "--data", "ucf101:/d", "--out", "o", "--init", "w.pth"])
    assert config_from_args(args)["recipe"]["init"] == "w.pth"
