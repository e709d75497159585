"""Build the nn.Module that an ArchSpec describes.

Every convolution slot becomes a `SlotModule`: the layers its kind declares in `spaces.kinds`
(conv → BN [→ ReLU] units, named by their declared paths, combined as declared), the same
declaration `spaces.cost` counts. Each slot ends with its BatchNorm (or, P3D, its own ReLUs), so a
block only adds ReLUs and the residual sum. The module hierarchy mirrors the papers' tables: stem
(conv1), layer1 … layer4 (conv2_x … conv5_x), avg pool, fc.
"""

from __future__ import annotations

import torch
from torch import nn

from spaces.arch import ArchSpec
from spaces.blueprint import Block, Conv, blueprint, stem_pool_geometry
from spaces.kinds import KINDS, layers


def _conv3d(cin: int, cout: int, kernel, stride, groups: int = 1) -> nn.Conv3d:
    padding = tuple(k // 2 for k in kernel)
    return nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False, groups=groups)


def _attach(root: nn.Module, path: str, module: nn.Module) -> None:
    """Register `module` at a dotted path ("conv.0"), creating plain containers on the way."""
    *parents, leaf = path.split(".")
    for name in parents:
        if not hasattr(root, name):
            root.add_module(name, nn.Module())
        root = getattr(root, name)
    root.add_module(leaf, module)


class SlotModule(nn.Module):
    """One slot, made from its kind's declared layers (spaces.kinds)."""

    def __init__(self, slot: Conv):
        super().__init__()
        declared = layers(slot)
        self.kind = slot.kind
        self.fold = declared.fold
        self.out = declared.out
        self.ends_with_bn = declared.ends_with_bn
        steps = []
        for unit in declared.units:
            c = unit.conv
            conv = _conv3d(c.cin, c.cout, c.kernel, c.stride, c.groups)
            bn = nn.BatchNorm3d(c.cout)
            _attach(self, c.path, conv)
            _attach(self, unit.bn_path, bn)
            steps.append((conv, bn, unit.relu, unit.src))
        self._steps = tuple(steps)  # the same module objects, in forward order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fold:
            b, c, t, h, w = x.shape  # (B, 3, L, H, W)
            x = x.reshape(b, c * t, 1, h, w)  # (B, 3L, 1, H, W)
        outs: list[torch.Tensor] = []
        for conv, bn, relu, src in self._steps:
            y = bn(conv(x if src < 0 else outs[src]))  # (B, cout, T', H', W')
            outs.append(torch.relu_(y) if relu else y)
        if len(self.out) == 1:
            return outs[self.out[0]]
        return outs[self.out[0]] + outs[self.out[1]]

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"


def make_slot(slot: Conv) -> SlotModule:
    if slot.kind not in KINDS:
        raise ValueError(f"build: unknown conv kind {slot.kind!r}; valid: {sorted(KINDS)}")
    return SlotModule(slot)


class ResidualBlock(nn.Module):
    """Basic (two slots) or bottleneck (1×1×1, slot, 1×1×1) block with a projection shortcut."""

    def __init__(self, block: Block):
        super().__init__()
        self.convs = nn.ModuleList(make_slot(c) for c in block.convs)
        self.shortcut = make_slot(block.shortcut) if block.shortcut is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for i, conv in enumerate(self.convs):
            out = conv(out)
            if i < len(self.convs) - 1:
                out = torch.relu_(out) if conv.ends_with_bn else torch.relu(out)
        # in place where autograd allows, as torchvision (9-15 % less memory per step): a BN output
        # is not saved for the backward (BN keeps its input), a P3D slot's own ReLU output is
        if self.convs[-1].ends_with_bn:
            out += self.shortcut(x)
            return torch.relu_(out)  # (B, cout, T', H', W')
        return torch.relu(out + self.shortcut(x))


class VideoResNet(nn.Module):
    def __init__(self, spec: ArchSpec, *, zero_init_residual: bool = False):
        super().__init__()
        plan = blueprint(spec)
        self.spec = spec
        stem = [make_slot(plan.stem), nn.ReLU(inplace=True)]
        if spec.stem_pool:
            frames = 1 if KINDS[spec.convs[0]].folds_time else spec.frames
            kernel, stride, padding = stem_pool_geometry(frames)
            stem.append(nn.MaxPool3d(kernel, stride=stride, padding=padding))
        self.stem = nn.Sequential(*stem)
        self.layers = nn.ModuleList(nn.Sequential(*(ResidualBlock(b) for b in stage)) for stage in plan.stages)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(plan.features, spec.num_classes)
        self.reset_parameters(zero_init_residual)

    def reset_parameters(self, zero_init_residual: bool = False) -> None:
        """He initialisation for convs (as torchvision's video ResNets), BN γ = 1, β = 0; with
        `zero_init_residual` the last BN of every residual branch starts at γ = 0, so each block
        starts as its shortcut (Goyal et al. 2017; torchvision's option of the same name)."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for block in self.modules():
                if isinstance(block, ResidualBlock):
                    last_bn = [m for m in block.convs[-1].modules() if isinstance(m, nn.BatchNorm3d)][-1]
                    nn.init.zeros_(last_bn.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, k, T, H/2, W/2)
        for layer in self.layers:
            x = layer(x)  # conv2_x … conv5_x
        return self.pool(x).flatten(1)  # (B, 8k) or (B, 32k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))  # (B, num_classes)


def build(spec: ArchSpec, *, zero_init_residual: bool = False) -> VideoResNet:
    """The network for `spec`; input (B, 3, spec.frames, spec.crop, spec.crop) → logits (B, classes)."""
    return VideoResNet(spec, zero_init_residual=zero_init_residual)
