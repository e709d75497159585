"""Build the nn.Module that an ArchSpec describes.

Every convolution kind is a module class with one signature, `Kind(slot)`, taking the `Conv` slot
that `spaces.blueprint` resolved (channels, kernel, stride, intermediate width). Each ends with its
BatchNorm, so a block only adds ReLUs and the residual sum. The module hierarchy mirrors the
papers' tables: stem (conv1), layer1 … layer4 (conv2_x … conv5_x), avg pool, fc.
"""

from __future__ import annotations

import torch
from torch import nn

from spaces.arch import ArchSpec
from spaces.blueprint import Block, Conv, blueprint, stem_pool_geometry


def _conv3d(cin: int, cout: int, kernel, stride) -> nn.Conv3d:
    padding = tuple(k // 2 for k in kernel)
    return nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False)


class ConvBN(nn.Sequential):
    """3d: t×d×d convolution; 2d: 1×d×d (it may still stride time, Res3D Table 13)."""

    def __init__(self, slot: Conv):
        ts, ss = slot.stride
        super().__init__(
            _conv3d(slot.cin, slot.cout, (slot.t, slot.d, slot.d), (ts, ss, ss)), nn.BatchNorm3d(slot.cout)
        )


class FoldConv(nn.Module):
    """R2D conv1 (R(2+1)D §3.1): the L frames become 3L channels of one 2D image."""

    def __init__(self, slot: Conv):
        super().__init__()
        self.conv = ConvBN(slot)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape  # (B, 3, L, H, W)
        return self.conv(x.reshape(b, c * t, 1, h, w))  # (B, k, 1, H', W')


class Factorised(nn.Module):
    """(2+1)D (R(2+1)D §3.5) and 2.5D (Res3D §3.5): 1×d×d to `mid` channels, BN, ReLU, then t×1×1."""

    def __init__(self, slot: Conv):
        super().__init__()
        ts, ss = slot.stride
        self.spatial = _conv3d(slot.cin, slot.mid, (1, slot.d, slot.d), (1, ss, ss))
        self.bn_spatial = nn.BatchNorm3d(slot.mid)
        self.temporal = _conv3d(slot.mid, slot.cout, (slot.t, 1, 1), (ts, 1, 1))
        self.bn = nn.BatchNorm3d(slot.cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu_(self.bn_spatial(self.spatial(x)))  # (B, mid, T, H', W')
        return self.bn(self.temporal(x))  # (B, cout, T', H', W')


class _P3D(nn.Module):
    """Shared parts of the P3D blocks (P3D §3.1, Eqs. 3–5): S = 1×d×d and T = t×1×1, each BN + ReLU."""

    def __init__(self, slot: Conv, t_in: int):
        super().__init__()
        if slot.stride != (1, 1):
            raise ValueError(f"P3D slots do not stride (the bottleneck's 1×1×1 does), got stride {slot.stride}")
        self.spatial = _conv3d(slot.cin, slot.cout, (1, slot.d, slot.d), (1, 1, 1))
        self.bn_spatial = nn.BatchNorm3d(slot.cout)
        self.temporal = _conv3d(t_in, slot.cout, (slot.t, 1, 1), (1, 1, 1))
        self.bn_temporal = nn.BatchNorm3d(slot.cout)

    def s(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(self.bn_spatial(self.spatial(x)))

    def t(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(self.bn_temporal(self.temporal(x)))


class P3DA(_P3D):
    """Cascaded: T(S(x)) (Eq. 3)."""

    def __init__(self, slot: Conv):
        super().__init__(slot, t_in=slot.cout)

    def forward(self, x):
        return self.t(self.s(x))


class P3DB(_P3D):
    """Parallel: S(x) + T(x) (Eq. 4)."""

    def __init__(self, slot: Conv):
        super().__init__(slot, t_in=slot.cin)

    def forward(self, x):
        return self.s(x) + self.t(x)


class P3DC(_P3D):
    """Cascaded with a shortcut from S: S(x) + T(S(x)) (Eq. 5)."""

    def __init__(self, slot: Conv):
        super().__init__(slot, t_in=slot.cout)

    def forward(self, x):
        s = self.s(x)
        return s + self.t(s)


CONV_KINDS: dict[str, type[nn.Module]] = {
    "3d": ConvBN,
    "2d": ConvBN,
    "fold": FoldConv,
    "2plus1d": Factorised,
    "2plus1d-tv": Factorised,
    "2.5d": Factorised,
    "p3d-a": P3DA,
    "p3d-b": P3DB,
    "p3d-c": P3DC,
}


def _ends_with_bn(module: nn.Module) -> bool:
    """The slot's output is its BatchNorm's: free to overwrite (P3D slots end with a ReLU)."""
    return isinstance(module, (ConvBN, FoldConv, Factorised))


def make_slot(slot: Conv) -> nn.Module:
    return CONV_KINDS[slot.kind](slot)


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
                out = torch.relu_(out) if _ends_with_bn(conv) else torch.relu(out)
        # in place where autograd allows, as torchvision (9-15 % less memory per step): a BN output
        # is not saved for the backward (BN keeps its input), a P3D slot's own ReLU output is
        if _ends_with_bn(self.convs[-1]):
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
            frames = 1 if spec.convs[0] == "fold" else spec.frames
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
