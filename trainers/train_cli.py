"""`starch train`: train one architecture from the command line, for debugging a single network."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

from trainers.data.datasets import FORMATS, DataSpec
from trainers.recipe import Recipe

EXAMPLES = """examples:
  starch data synth /tmp/motion --videos-per-class 50
  starch train --arch r3d_18 --width 8 --data ucf101:/tmp/motion --frames 8 --sampling-rate 2 \\
               --crop 32 --resize native --epochs 3 --batch-size 16 --out runs/r3d_tiny
  starch train --arch mc3 --budget 33.0M --data ucf101:/data/ucf101 --frames 4 --out runs/mc3
  starch train --out runs/r3d_tiny --resume --epochs 6      # continue from the last checkpoint
  starch train --arch r3d_18 --init r3d_18-b3b3357e.pth --data ucf101:/data/ucf101 --out runs/r3d_ft

Writes OUT/config.json, one JSON object per epoch to OUT/metrics.jsonl, and the latest checkpoint
to OUT/checkpoint/checkpoint.pt (with --keep-checkpoints, also every epoch's as OUT/checkpoint_NNNN.pt).
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train one architecture (debugging a single network)",
        description="Train one network on one dataset with the papers' recipe, with a progress bar.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT from its last checkpoint")
    a = p.add_argument_group("architecture")
    a.add_argument("--arch", metavar="NAME", help="named network (starch describe --list)")
    width = a.add_mutually_exclusive_group()
    width.add_argument("--width", type=int, metavar="K")
    width.add_argument("--budget", metavar="N", help="solve k for a parameter budget, e.g. 33.2M")
    a.add_argument("--rule", choices=("nearest", "under"), default="nearest")
    a.add_argument("--frames", type=int, metavar="L")
    a.add_argument("--crop", type=int, metavar="S")
    a.add_argument("--sampling-rate", type=int, metavar="R")
    d = p.add_argument_group("data")
    d.add_argument("--data", metavar="FORMAT:ROOT", help=f"dataset, FORMAT one of {', '.join(FORMATS)}")
    d.add_argument("--split", type=int, default=1)
    d.add_argument("--resize", default="auto", metavar="auto|native|HxW", help="frame size before cropping")
    d.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    d.add_argument("--eval-clips", type=int, default=10, help="clips per test video for video@1")
    d.add_argument("--batch-size", type=int, default=16)
    r = p.add_argument_group("recipe")
    r.add_argument("--epochs", type=int)
    r.add_argument("--lr", type=float)
    r.add_argument("--lr-step-epochs", type=int)
    r.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"))
    r.add_argument("--seed", type=int)
    r.add_argument("--init", metavar="FILE", help="start from a torchvision state dict or a starch checkpoint")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep every epoch's checkpoint")
    p.set_defaults(func=run)


def _parse_resize(text: str):
    if text == "auto":
        return "auto"
    if text == "native":
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        return (h, w)
    except ValueError:
        raise ValueError(f"--resize must be auto, native or HxW like 128x171, got {text!r}") from None


def config_from_args(args) -> dict:
    from spaces import named

    if not args.arch or not args.data:
        raise ValueError("starch train needs --arch NAME and --data FORMAT:ROOT (or --resume with an existing --out)")
    fmt, sep, root = args.data.partition(":")
    if not sep or not root:
        raise ValueError(f"--data must look like FORMAT:ROOT (e.g. ucf101:/data/ucf101), got {args.data!r}")
    overrides = {
        k: v
        for k, v in (
            ("width", args.width),
            ("frames", args.frames),
            ("crop", args.crop),
            ("sampling_rate", args.sampling_rate),
        )
        if v is not None
    }
    arch = named(args.arch, **overrides)
    data = DataSpec(
        format=fmt,
        root=root,
        split=args.split,
        resize=_parse_resize(args.resize),
        num_workers=args.workers,
        batch_size=args.batch_size,
        eval_clips=args.eval_clips,
    )
    recipe = {
        k: v
        for k, v in (
            ("epochs", args.epochs),
            ("lr", args.lr),
            ("lr_step_epochs", args.lr_step_epochs),
            ("precision", args.precision),
            ("seed", args.seed),
            ("init", args.init),
        )
        if v is not None
    }
    return {
        "arch": arch.to_dict(),
        "data": data.to_dict(),
        "recipe": Recipe(**recipe).to_dict(),
        "budget": args.budget,
        "width_rule": args.rule,
    }


class FolderReporter:
    """Appends records to OUT/metrics.jsonl and writes the checkpoint next to it."""

    def __init__(self, out: Path, keep_all: bool):
        self.out, self.keep_all = out, keep_all

    def __call__(self, record: dict, state: dict) -> None:
        from trainers import checkpoint

        if state:  # checkpoint first: a record in metrics.jsonl always has its checkpoint
            checkpoint.save(self.out / "checkpoint", state)
            if self.keep_all:
                shutil.copy2(
                    self.out / "checkpoint" / checkpoint.FILENAME, self.out / f"checkpoint_{state['epoch']:04d}.pt"
                )
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        shown = {k: record[k] for k in ("epoch", "train_loss", "clip@1", "video@1", "status") if k in record}
        print("  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()), flush=True)


def run(args) -> int:
    from trainers import checkpoint  # torch: only when training, so `starch --help` stays fast
    from trainers.trial import resolve, run_trial

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    out = Path(args.out)
    config_file = out / "config.json"
    state = None
    if args.resume:
        if not config_file.is_file():
            raise FileNotFoundError(f"--resume: {str(config_file)!r} does not exist; nothing to resume in {str(out)!r}")
        config = json.loads(config_file.read_text())
        if args.epochs is not None:  # allow extending a finished run
            config["recipe"]["epochs"] = args.epochs
        ckpt = out / "checkpoint"
        state = checkpoint.load(ckpt) if (ckpt / checkpoint.FILENAME).is_file() else None
        _truncate_metrics(out / "metrics.jsonl", state["epoch"] if state else 0)
    else:
        if (out / "metrics.jsonl").exists():
            raise ValueError(f"{str(out)!r} already holds a run; pass --resume to continue it or choose another --out")
        config = config_from_args(args)
    cfg = resolve(config)
    out.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps({**cfg.to_dict(), "budget": None}, indent=2))
    if state is not None and state["epoch"] >= cfg.recipe.epochs:
        print(f"{out} already finished {state['epoch']} epochs; pass --epochs N > {state['epoch']} to train on")
        return 0
    from tqdm import tqdm

    epoch_counter = {"e": state["epoch"] if state else 0}

    def progress(loader):
        epoch_counter["e"] += 1
        return tqdm(loader, desc=f"epoch {epoch_counter['e']}/{cfg.recipe.epochs}", unit="batch", leave=False)

    result = run_trial(cfg, FolderReporter(out, args.keep_checkpoints), state=state, progress=progress)
    print(f"{result.get('status', 'completed')}: {out / 'metrics.jsonl'}")
    return 0 if result.get("status") == "completed" else 1


def _truncate_metrics(path: Path, epochs: int) -> None:
    """Keep the records of the epochs the checkpoint holds (a crash may have left later lines)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["epoch"] <= epochs]
    path.write_text("".join(line + "\n" for line in kept))
