"""`starch export`: a trial's weights as a file another library loads (torchvision's key names)."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  starch export runs/my-study/a1b2c3_R3D-18 --format torchvision --out r3d_18_ucf.pth
  starch export runs/r3d_tiny --format torchvision --out r3d_tiny.pth       # a `starch train` folder

The file is a plain state dict: torchvision.models.video.r3d_18(num_classes=C).load_state_dict(
torch.load(FILE)) for r3d_18, mc3 and r2plus1d_18_tv at width 64. Other convertible specs (3d, 2d,
2plus1d-tv stages, basic blocks) get torchvision's key names too, but torchvision builds width 64 only.
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a trial's weights for another library (torchvision)",
        description="Write the newest checkpoint of a trial folder (RUN_DIR/TRIAL) or a `starch train` folder "
        "as a state dict under torchvision's key names.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("trial", metavar="TRIAL_DIR", help="RUN_DIR/TRIAL of a search, or a `starch train --out` folder")
    p.add_argument("--format", choices=("torchvision",), default="torchvision", help="key names (default: torchvision)")
    p.add_argument("--out", required=True, metavar="FILE", help="the state-dict file to write (.pth)")
    p.set_defaults(func=run)


def run(args) -> int:
    from trainers.init_weights import export_torchvision  # torch: not for `starch --help`

    info = export_torchvision(args.trial, args.out)
    model = info["torchvision_model"]
    where = (
        f"loads into torchvision.models.video.{model}(num_classes={info['num_classes']})"
        if model
        else "torchvision has no builder for this architecture; the keys are those of its VideoResNet class"
    )
    print(f"wrote {info['out']}: {info['tensors']} tensors of {info['arch']} from {info['checkpoint']}; {where}")
    return 0
