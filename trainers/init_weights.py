"""Start a trial from saved weights (`schedule.init: PATH`) and write weights for torchvision.

    init: a torchvision video-ResNet state dict (r3d_18, mc3_18, r2plus1d_18 — renamed by
          spaces.tv_weights), a starch trial checkpoint (checkpoint.pt or its folder), or a
          starch state dict. Every tensor must match the model by name and shape, except the
          classifier: when the class count differs, fc.weight and fc.bias keep their fresh
          initialisation. Nothing is downloaded; the file must exist on the node.
    export: the newest checkpoint of a trial folder (RUN_DIR/TRIAL) or a `starch train` folder,
          renamed to torchvision's keys (`starch export … --format torchvision`).

Files are read with `torch.load(weights_only=True)`, so a foreign file cannot execute code.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from spaces import ArchSpec
from spaces.tv_weights import from_torchvision, is_torchvision_state, to_torchvision, torchvision_name
from trainers import checkpoint

log = logging.getLogger(__name__)
CLASSIFIER = ("fc.weight", "fc.bias")


def read_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, what it was): 'torchvision', 'starch checkpoint' or 'starch state dict'."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"schedule.init: no file or folder {str(p)!r} on {os.uname().nodename} "
            "(a torchvision state dict or a starch checkpoint; nothing is downloaded)"
        )
    data = checkpoint.load(p)  # weights_only; a folder means its checkpoint.pt
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        return data["model"], "starch checkpoint"
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(
            f"schedule.init: {str(p)!r} is neither a state dict nor a starch checkpoint (got {type(data).__name__})"
        )
    return data, "torchvision" if is_torchvision_state(data) else "starch state dict"


def initialise(model: torch.nn.Module, spec: ArchSpec, path: str | os.PathLike) -> dict[str, Any]:
    """Load `path` into `model` (built from `spec`); returns what was loaded, for the trial's records."""
    state, source = read_state(path)
    if source == "torchvision":
        classes = state["fc.weight"].shape[0] if "fc.weight" in state else spec.num_classes
        try:
            state = from_torchvision(state, spec.replace(num_classes=int(classes)))
        except ValueError as exc:
            raise ValueError(
                f"schedule.init: {path} (torchvision) does not fit {spec.name} (width {spec.width}): {exc}"
            ) from None
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape and k not in CLASSIFIER]
    if missing or unexpected or wrong:
        detail = "; ".join(f"{k}: file {list(state[k].shape)}, model {list(own[k].shape)}" for k in wrong[:3])
        raise ValueError(
            f"schedule.init: {path} ({source}) does not fit {spec.name} (width {spec.width}): "
            f"{len(missing)} missing {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, "
            f"{len(wrong)} of another shape{': ' + detail if detail else ''}"
        )
    replaced = [k for k in CLASSIFIER if state[k].shape != own[k].shape]
    loaded = {k: v for k, v in state.items() if k not in replaced}
    model.load_state_dict(loaded, strict=False)
    params = {name for name, _ in model.named_parameters()}
    summary = {
        "init": str(path),
        "init_source": source,
        "init_tensors": len(loaded),
        "init_params": sum(v.numel() for k, v in loaded.items() if k in params),
        "init_replaced": replaced,
    }
    log.info(
        "schedule.init: loaded %d of %d tensors (%s) from %s%s",
        len(loaded),
        len(own),
        source,
        path,
        f"; classifier replaced ({state['fc.weight'].shape[0]} → {own['fc.weight'].shape[0]} classes)"
        if replaced
        else "",
    )
    return summary


def find_checkpoint(folder: str | os.PathLike) -> tuple[Path, ArchSpec]:
    """The newest checkpoint file of a trial folder or `starch train` folder, and its trial's ArchSpec."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"export: {str(folder)!r} is not a folder (give RUN_DIR/TRIAL or a `starch train --out` folder)"
        )
    records = folder / "result.json" if (folder / "result.json").exists() else folder / "metrics.jsonl"
    arch = None
    if records.exists():
        for line in records.read_text().splitlines():
            try:
                arch = json.loads(line).get("arch") or arch
            except json.JSONDecodeError:
                continue  # a line truncated by a kill
    if arch is None:
        raise FileNotFoundError(f"export: {str(folder)!r} has no result.json or metrics.jsonl with the trial's 'arch'")
    # Ray Tune: checkpoint_000NNN/ (zero-padded, so the last in name order is the newest); starch train: checkpoint/
    found = sorted(folder.glob(f"checkpoint_*/{checkpoint.FILENAME}")) or [
        p for p in [folder / "checkpoint" / checkpoint.FILENAME] if p.is_file()
    ]
    if not found:
        raise FileNotFoundError(
            f"export: no checkpoint in {str(folder)!r} (checkpoint_*/{checkpoint.FILENAME} or "
            f"checkpoint/{checkpoint.FILENAME}); the trial never finished an epoch"
        )
    return found[-1], ArchSpec.from_dict(arch)


def export_torchvision(folder: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Write the trial's weights under torchvision's names; returns what was written."""
    path, spec = find_checkpoint(folder)
    state, _ = read_state(path)
    tv_state = to_torchvision(state, spec)
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tv_state, out)
    return {
        "checkpoint": str(path),
        "out": str(out),
        "tensors": len(tv_state),
        "arch": spec.name,
        "num_classes": spec.num_classes,
        "torchvision_model": torchvision_name(spec),
    }
