"""The clip loader: shapes, determinism, eval clips, and bad videos that never kill an epoch."""

import dataclasses
import logging
import os

import numpy as np
import pytest
import torch

from tests.decode_faults import LoaderFaults, server
from tests.videos import DECODER_PARAMS, decoded_index, write_video
from trainers.data import decode_process
from trainers.data.datasets import DataSpec
from trainers.data.loader import make_loader
from trainers.data.transforms import KINETICS_MEAN, KINETICS_STD


def _spec(root, **kw):
    base = dict(
        format="folder",
        root=str(root),
        clip_len=4,
        sampling_rate=2,
        crop=16,
        resize=(24, 32),
        batch_size=3,
        num_workers=0,
        cache=False,
        sample_timeout_s=10,
    )
    return DataSpec(**(base | kw))


def _frame_ids(video):  # (B, C, T, H, W) normalised → (B, T) frame indices encoded in brightness
    mean = torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1)
    pixels = (video * std + mean).mul(255).permute(0, 2, 3, 4, 1).numpy()  # (B, T, H, W, 3)
    return [[decoded_index(f) for f in clip] for clip in pixels]


def _epoch(loader):
    return [(b["video_id"].tolist(), b["video"]) for b in loader]


def test_train_batches_are_real_clips(folder_root):
    loader = make_loader(_spec(folder_root, num_workers=2), "train", seed=1)
    batches = list(loader)
    assert sum(len(b["label"]) for b in batches) == 8 and len(loader) == 3
    b = batches[0]
    assert b["video"].shape == (3, 3, 4, 16, 16) and b["video"].dtype == torch.float32
    index = loader.dataset.index
    assert b["label"].tolist() == [index.videos[v][1] for v in b["video_id"].tolist()]
    for ids in _frame_ids(b["video"]):  # L=4 frames, every 2nd, inside the 40-frame video
        assert np.all(np.diff(ids) == 2) and 0 <= ids[0] <= 40 - 7
    assert loader.stats()["num_bad_videos"] == 0 and loader.stats()["yielded_samples"] == 8


def test_epochs_are_deterministic_given_seed_and_epoch(folder_root):
    spec = _spec(folder_root, num_workers=2)
    a, b = make_loader(spec, "train", seed=5), make_loader(spec, "train", seed=5)
    a0, b0 = _epoch(a), _epoch(b)
    a1 = _epoch(a)  # epoch 1
    assert [ids for ids, _ in a0] == [ids for ids, _ in b0]
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a0, b0))
    assert [ids for ids, _ in a0] != [ids for ids, _ in a1]  # reshuffled
    c = make_loader(dataclasses.replace(spec, num_workers=0), "train", seed=5)
    c.set_epoch(1)  # same clips with 0 workers as with 2: per-item seeds, not per-worker
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a1, _epoch(c)))


def test_flip_follows_the_dataset(folder_root, ucf_root):
    assert make_loader(_spec(folder_root), "train").dataset.transform.flip is False  # starch_dataset.json
    assert make_loader(_spec(folder_root, hflip=True), "train").dataset.transform.flip is True
    ucf = DataSpec(format="ucf101", root=str(ucf_root), cache=False, crop=16, resize=(24, 32))
    assert make_loader(ucf, "train").dataset.transform.flip is True


def test_video_eval_gives_n_clips_per_video_in_order(folder_root):
    loader = make_loader(_spec(folder_root, eval_clips=5, batch_size=5), "test")
    batches = list(loader)
    video_ids = torch.cat([b["video_id"] for b in batches]).tolist()
    clip_ids = torch.cat([b["clip_id"] for b in batches]).tolist()
    assert video_ids == [v for v in range(4) for _ in range(5)] and clip_ids == list(range(5)) * 4
    starts = [ids[0] for ids in _frame_ids(batches[0]["video"])]
    assert starts == [0, 8, 16, 25, 33]  # evenly spaced over 40 - 7 frames
    clip1 = list(make_loader(_spec(folder_root), "test", eval_mode="clip"))
    assert sum(len(b["label"]) for b in clip1) == 4
    assert [ids[0] for ids in _frame_ids(clip1[0]["video"])] == [16, 16, 16]  # the centre clip


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
def test_bad_videos_are_skipped_counted_and_warned_once(bad_root, caplog, decoder):
    spec = _spec(bad_root, num_workers=2, batch_size=4, decoder=decoder)
    loader = make_loader(spec, "train", seed=0)
    for _ in range(2):
        seen = sum(len(b["label"]) for b in loader)
        assert seen == 4  # the four good videos, every epoch
    stats = loader.stats()
    bad = {os.path.basename(p): r for p, r in stats["bad_videos"].items()}
    assert sorted(bad) == ["half.avi", "half.mp4", "random.avi", "zero.mp4"]
    assert "empty file" in bad["zero.mp4"] and "Invalid data" in bad["random.avi"]
    assert [os.path.basename(p) for p in stats["short_videos"]] == ["three_frames.mp4"]
    assert stats["short_videos"][next(iter(stats["short_videos"]))] == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in bad:  # ONE warning per file, naming it, over two epochs
        assert sum(name in w for w in warnings) == 1
    assert sum("shorter than one clip" in w for w in warnings) == 1


def test_loop_policy_keeps_short_videos(bad_root):
    loader = make_loader(_spec(bad_root, short_video="loop", batch_size=8), "train")
    assert sum(len(b["label"]) for b in loader) == 5 and loader.stats()["num_short_videos"] == 0


def test_crash_and_hang_fail_one_sample_not_the_epoch(folder_root, monkeypatch):
    monkeypatch.setattr(decode_process, "SERVER", server(LoaderFaults))  # forked workers inherit it
    loader = make_loader(_spec(folder_root, num_workers=2, sample_timeout_s=2), "train")
    seen = sum(len(b["label"]) for b in loader)
    assert seen == 6
    reasons = {os.path.basename(p): r for p, r in loader.stats()["bad_videos"].items()}
    assert "SIGABRT" in reasons["left_1.mp4"] and "timed out" in reasons["right_2.mp4"]


def test_memory_stays_flat_over_many_clips(tmp_path):
    """300 clips from a 128x171 decode: the decode child's and our own RSS must not grow."""
    write_video(tmp_path / "train" / "a" / "long.mp4", frames=120, size=(120, 160))
    spec = _spec(tmp_path, clip_len=8, sampling_rate=2, crop=112, resize="auto", batch_size=10)
    loader = make_loader(spec, "train")
    dataset = loader.dataset

    def rss(pid):
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024  # MB

    for i in range(50):
        dataset.epoch = i
        assert isinstance(dataset[0], dict)
    child, before_child, before_self = dataset.decoder().pid, rss(dataset.decoder().pid), rss(os.getpid())
    for i in range(50, 350):
        dataset.epoch = i
        assert isinstance(dataset[0], dict)
    assert dataset.decoder().pid == child
    assert rss(child) - before_child < 15 and rss(os.getpid()) - before_self < 15
    loader.close()
