"""Crops, flips and normalisation on synthetic arrays whose pixels say where they came from."""

import numpy as np
import pytest
import torch

from trainers.data.transforms import KINETICS_MEAN, KINETICS_STD, ClipTransform, centre_crop, to_tensor


def _ramp(t=4, h=20, w=30):
    """(T, H, W, 3) uint8 with channel 0 = column, channel 1 = row, channel 2 = frame."""
    t_, h_, w_ = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
    return np.stack([w_, h_, t_], axis=-1).astype(np.uint8)


def _denorm(clip):  # (C, T, H, W) float → (T, H, W, 3) uint8 values
    mean = torch.tensor(KINETICS_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD).view(3, 1, 1, 1)
    return (clip * std + mean).mul(255).round().permute(1, 2, 3, 0).numpy().astype(np.uint8)


def test_to_tensor_layout_and_normalisation():
    frames = _ramp()
    clip = to_tensor(frames)
    assert clip.shape == (3, 4, 20, 30) and clip.dtype == torch.float32
    assert np.array_equal(_denorm(clip), frames)


def test_eval_is_centre_crop():
    clip = ClipTransform(crop=10, train=False)(_ramp())
    assert clip.shape == (3, 4, 10, 10)
    out = _denorm(clip)
    assert out[0, 0, 0, 0] == 10 and out[0, 0, 0, 1] == 5  # left col (30-10)//2, top row (20-10)//2
    assert np.array_equal(out, centre_crop(_ramp(), 10))


def test_train_crops_vary_and_flip_only_when_allowed():
    frames = _ramp()
    flipping, fixed = ClipTransform(crop=10, train=True, flip=True), ClipTransform(crop=10, train=True, flip=False)
    lefts, flips = set(), 0
    for seed in range(200):
        out = _denorm(flipping(frames, np.random.default_rng(seed)))
        cols = out[0, 0, :, 0].astype(int)
        flips += cols[0] > cols[-1]
        lefts.add(int(cols.min()))
        assert np.all(
            _denorm(fixed(frames, np.random.default_rng(seed)))[0, 0, 1:, 0]
            > _denorm(fixed(frames, np.random.default_rng(seed)))[0, 0, :-1, 0]
        )
    assert lefts == set(range(21))  # every horizontal position
    assert 60 < flips < 140  # p = 0.5
    a = flipping(frames, np.random.default_rng(7))
    assert torch.equal(a, flipping(frames, np.random.default_rng(7)))


def test_frames_smaller_than_crop_are_upscaled_not_an_error():
    clip = ClipTransform(crop=16, train=True)(np.zeros((2, 8, 12, 3), np.uint8), np.random.default_rng(0))
    assert clip.shape == (3, 2, 16, 16)


def test_train_needs_rng():
    with pytest.raises(ValueError, match="rng"):
        ClipTransform(crop=8, train=True)(_ramp())
