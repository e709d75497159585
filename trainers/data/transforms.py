"""Per-clip transforms: uint8 frames (T, H, W, 3) → normalised float tensor (C, T, H, W).

    train:  random crop (spatial jitter) → horizontal flip with p=0.5 (only if the dataset's labels
            survive a flip) → float in [0, 1] → (x - mean) / std → (C, T, H, W)
    eval:   centre crop → float → normalise → (C, T, H, W)

The papers train on random 112×112 crops of 128×171 frames and test on the centre crop (Res3D §3,
C3D §3). All randomness comes from the `rng` the caller passes, so a clip is a pure function of
(frames, rng) and the loader can make epochs reproducible. Frames smaller than the crop (native
size of a tiny video) are first scaled up so their short side equals the crop, instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Kinetics-400 statistics, as torchvision's video models use them.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def random_crop(frames: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(T, H, W, 3) → (T, size, size, 3) at a random position (a view, no copy)."""
    _, height, width, _ = frames.shape
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return frames[:, top : top + size, left : left + size]


def centre_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) → (T, size, size, 3) from the middle."""
    _, height, width, _ = frames.shape
    top, left = (height - size) // 2, (width - size) // 2
    return frames[:, top : top + size, left : left + size]


def hflip(frames: np.ndarray) -> np.ndarray:
    """Mirror left-right: (T, H, W, 3) → (T, H, W, 3)."""
    return frames[:, :, ::-1]


def to_tensor(frames: np.ndarray, *, mean=KINETICS_MEAN, std=KINETICS_STD) -> torch.Tensor:
    """uint8 (T, H, W, 3) → normalised float32 (C, T, H, W)."""
    clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float().div_(255.0)  # (C, T, H, W)
    mean_t = torch.tensor(mean, dtype=clip.dtype).view(3, 1, 1, 1)
    std_t = torch.tensor(std, dtype=clip.dtype).view(3, 1, 1, 1)
    return clip.sub_(mean_t).div_(std_t)


def upscale_to(frames: np.ndarray, size: int) -> np.ndarray:
    """Scale (T, H, W, 3) up so min(H, W) >= size; frames already large enough are returned as is."""
    _, height, width, _ = frames.shape
    if min(height, width) >= size:
        return frames
    scale = size / min(height, width)
    new_hw = (max(size, round(height * scale)), max(size, round(width * scale)))
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    x = F.interpolate(x, size=new_hw, mode="bilinear", align_corners=False)
    return x.round().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (T, H', W', 3)


@dataclass(frozen=True)
class ClipTransform:
    """The per-clip transform of one subset. Called as `transform(frames, rng)`."""

    crop: int
    train: bool
    flip: bool = True  # only used when train; False for datasets whose labels a mirror changes
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        frames = upscale_to(frames, self.crop)  # (T, H, W, 3)
        if self.train:
            if rng is None:
                raise ValueError("ClipTransform(train=True) needs an rng")
            frames = random_crop(frames, self.crop, rng)
            if self.flip and rng.random() < 0.5:
                frames = hflip(frames)
        else:
            frames = centre_crop(frames, self.crop)
        return to_tensor(frames, mean=self.mean, std=self.std)  # (C, T, crop, crop)
