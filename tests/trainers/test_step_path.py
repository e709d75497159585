"""The steady-state step (issue 25): the same numbers as the plain loop it replaced, per-phase
times in every record, batches already in the model's layout, video@1 summed on the device."""

import pytest
import torch
import torch.nn.functional as F

from spaces import build, named
from trainers.data.datasets import DataSpec
from trainers.data.loader import make_loader
from trainers.device import Runtime
from trainers.loop import evaluate_videos, make_optimizer
from trainers.phases import PHASES, record_key
from trainers.recipe import Recipe
from trainers.trial import TrialConfig, align, run_trial

TINY = dict(width=8, frames=8, crop=32, sampling_rate=2, blocks=(1, 1, 1, 1))


def _config(root, **recipe) -> TrialConfig:
    data = DataSpec(format="ucf101", root=str(root), resize=None, num_workers=0, batch_size=8, eval_clips=2)
    recipe = {"epochs": 2, "lr": 0.05, "schedule": "constant", "eval_every": 2, **recipe}
    return TrialConfig(named("r3d_18", **TINY), data, Recipe(**recipe))


def _old_batches(loader, epoch: int):
    """The loader's items of `epoch`, read one by one and collated as before issue 25: torch.stack
    of the (C, T, H, W) clips (a contiguous batch), python ints for labels and ids."""
    items = [loader.dataset[(epoch, i, False)] for i in loader.order(epoch)]
    for start in range(0, len(items), loader.batch_size):
        part = items[start : start + loader.batch_size]
        yield {
            "video": torch.stack([x["video"] for x in part]),
            "label": torch.tensor([x["label"] for x in part]),
            "video_id": [x["video_id"] for x in part],
        }


def _old_to_device(runtime, clips):  # the copy, then a second conversion into the model's layout
    clips = clips.to(runtime.device)
    return clips.contiguous(memory_format=torch.channels_last_3d) if runtime.channels_last else clips


def _reference_trial(cfg: TrialConfig, indexes) -> tuple[list[dict], dict]:
    """The trial's loop as it was before issue 25: a host read of the loss per step, python sums,
    the per-clip dictionary of video@1. Same seed, same model, same clips."""
    arch, data = align(cfg.arch, cfg.data, indexes["train"].num_classes)
    recipe = cfg.recipe
    torch.manual_seed(recipe.seed)
    model = build(arch, zero_init_residual=recipe.zero_init_residual)
    runtime = Runtime.select(recipe.precision)
    runtime.peak_flops()  # run_trial's probe: its own generator, so it moves no random stream
    model = runtime.prepare_model(model)
    optimizer = make_optimizer(model, recipe)
    train = make_loader(data, "train", seed=recipe.seed, index=indexes["train"])
    clip = make_loader(data, "test", seed=recipe.seed, index=indexes["test"], eval_mode="clip")
    video = make_loader(data, "test", seed=recipe.seed, index=indexes["test"], eval_mode="video")
    records = []
    for epoch in range(recipe.epochs):
        model.train()
        total, correct, seen = 0.0, 0, 0
        for batch in _old_batches(train, epoch):
            logits = model(_old_to_device(runtime, batch["video"]))
            loss = F.cross_entropy(logits.float(), batch["label"], label_smoothing=recipe.label_smoothing)
            value = loss.item()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += value * len(batch["label"])
            correct += (logits.argmax(1) == batch["label"]).sum().item()
            seen += len(batch["label"])
        record = {"train_loss": total / seen, "train_acc": correct / seen}
        records.append(record)
        if (epoch + 1) % recipe.eval_every and epoch + 1 < recipe.epochs:
            continue
        model.eval()
        with torch.no_grad():
            loss_sum, hits, n = 0.0, 0, 0
            for batch in _old_batches(clip, 0):
                logits = model(_old_to_device(runtime, batch["video"])).float()
                loss_sum += F.cross_entropy(logits, batch["label"], reduction="sum").item()
                hits += (logits.argmax(1) == batch["label"]).sum().item()
                n += len(batch["label"])
            record.update({"clip@1": hits / n, "test_loss": loss_sum / n})
            prob_sum, counts, labels = {}, {}, {}
            for batch in _old_batches(video, 0):
                probs = model(_old_to_device(runtime, batch["video"])).float().softmax(1)
                for p, vid, y in zip(probs, batch["video_id"], batch["label"].tolist()):
                    prob_sum[vid] = prob_sum[vid] + p if vid in prob_sum else p.clone()
                    counts[vid] = counts.get(vid, 0) + 1
                    labels[vid] = y
            vids = sorted(prob_sum)
            mean = torch.stack([prob_sum[v] / counts[v] for v in vids])
            target = torch.tensor([labels[v] for v in vids])
            top = mean.topk(min(5, mean.shape[1]), dim=1).indices
            record["video@1"] = (top[:, 0] == target).float().mean().item()
            record["video@5"] = (top == target[:, None]).any(1).float().mean().item()
    for loader in (train, clip, video):
        loader.close()
    return records, model.state_dict()


def test_trial_numbers_equal_the_loop_before_issue_25_and_every_record_has_its_phase_times(synth_root):
    """Loss, accuracy, clip@1, video@1/@5 and the trained weights: as the plain per-step loop gave.
    And the time of each phase in every epoch's record (evaluation only in the evaluated epoch)."""
    from trainers.data.datasets import build_index

    cfg = _config(synth_root)
    indexes = {"train": build_index(cfg.data, "train"), "test": build_index(cfg.data, "test")}
    records, states = [], []
    run_trial(cfg, lambda r, s: (records.append(r), states.append(s)), indexes=indexes)
    expected, weights = _reference_trial(cfg, indexes)
    assert len(records) == len(expected) == 2
    assert all(r["torch_threads"] == torch.get_num_threads() for r in records)
    for got, want in zip(records, expected):
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    for name, tensor in weights.items():
        torch.testing.assert_close(states[-1]["model"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)

    for r in records:
        times = {p: r[record_key(p)] for p in PHASES}
        assert all(v >= 0 for v in times.values()), times
        assert sum(times.values()) <= r["epoch_wall_s"] * 1.01 + 1e-3  # the phases divide the epoch's wall time
        assert sum(times.values()) > 0.5 * r["epoch_wall_s"]  # what they leave out is loop bookkeeping
        assert times["data"] > 0 and times["forward"] > 0 and times["backward"] > 0 and times["optimizer"] > 0
    first, second = records
    assert first[record_key("setup")] > 0 and second[record_key("setup")] == 0
    assert first[record_key("report")] == 0 and second[record_key("report")] > 0  # epoch 1's report and checkpoint
    assert first[record_key("eval")] == 0 and second[record_key("eval")] > 0  # eval_every 2


def test_batches_arrive_in_the_model_layout_and_go_to_the_device_without_a_copy(synth_root):
    data = _config(synth_root).data.replace(clip_len=8, sampling_rate=2, crop=32)
    loader = make_loader(data, "train", seed=0)
    try:
        batch = next(iter(loader))
    finally:
        loader.close()
    clips = batch["video"]  # (B, C, T, H, W)
    assert clips.is_contiguous(memory_format=torch.channels_last_3d) and clips.dtype == torch.float32
    assert batch["label"].dtype == torch.long and isinstance(batch["video_id"], torch.Tensor)
    last = Runtime(torch.device("cpu"), None, channels_last=True, scaler=None).to_device(clips)
    assert last.data_ptr() == clips.data_ptr()  # already channels-last on the CPU: no copy
    plain = Runtime(torch.device("cpu"), None, channels_last=False, scaler=None).to_device(clips)
    assert plain.is_contiguous() and torch.equal(plain, clips)


def test_batches_from_workers_equal_batches_read_in_process(synth_root):
    data = _config(synth_root).data.replace(clip_len=8, sampling_rate=2, crop=32)
    batches = {}
    for workers in (0, 2):
        loader = make_loader(data.replace(num_workers=workers), "train", seed=3)
        try:
            batches[workers] = list(loader)
        finally:
            loader.close()
    assert len(batches[0]) == len(batches[2]) > 1
    for a, b in zip(batches[0], batches[2]):
        assert b["video"].is_contiguous(memory_format=torch.channels_last_3d)
        for key in ("video", "label", "video_id", "clip_id"):
            assert torch.equal(a[key], b[key]), key


def test_video_accuracy_sums_clips_of_videos_in_any_order_and_batching():
    """Clips of a video spread over batches, several videos per batch, ids out of order and past
    the sums' first size: the same hits as averaging each video's softmax by hand."""
    torch.manual_seed(0)
    classes, clips_per_video = 7, 3
    vids = torch.tensor([5, 0, 12, 5, 3, 0, 12, 3, 5, 0, 12, 3, 40, 40, 40])
    labels = torch.randint(0, classes, (41,))[vids]
    x = torch.randn(len(vids), 3, 2, 4, 4)
    batches = [
        {"video": x[i : i + 4], "label": labels[i : i + 4], "video_id": vids[i : i + 4]} for i in range(0, len(vids), 4)
    ]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 4 * 4, classes))
    runtime = Runtime(torch.device("cpu"), None, channels_last=False, scaler=None)
    got = evaluate_videos(model, batches, runtime)
    with torch.no_grad():
        probs = model(x).softmax(1)
    hits1 = hits5 = 0
    for v in sorted(set(vids.tolist())):
        mean = probs[vids == v].mean(0)
        label = labels[vids == v][0]
        hits1 += int(mean.argmax() == label)
        hits5 += int(label in mean.topk(5).indices)
    assert got["test_videos"] == 5 and len(vids) == 5 * clips_per_video
    assert got["video@1"] == hits1 / 5 and got["video@5"] == hits5 / 5


def _fake_batches(n: int = 3) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [
        {
            "video": torch.randn(2, 3, 2, 4, 4, generator=g),
            "label": torch.tensor([i, i + 1]),
            "video_id": torch.tensor([i, i]),
        }
        for i in range(n)
    ]


def test_prefetch_passes_cpu_batches_through():
    from trainers.prefetch import prefetch

    batches = _fake_batches()
    runtime = Runtime(torch.device("cpu"), None, channels_last=True, scaler=None)
    assert prefetch(batches, runtime) is batches


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the side-stream copy needs CUDA")
def test_prefetch_puts_each_batch_on_the_gpu_in_the_model_layout_before_its_step():
    from trainers.prefetch import prefetch

    batches = _fake_batches()
    runtime = Runtime(torch.device("cuda"), None, channels_last=True, scaler=None)
    got = list(prefetch([{**b, "video": b["video"].pin_memory()} for b in batches], runtime))
    assert len(got) == len(batches)
    for want, batch in zip(batches, got):
        assert batch["video"].is_cuda and batch["video"].is_contiguous(memory_format=torch.channels_last_3d)
        assert torch.equal(batch["video"].cpu(), want["video"]) and torch.equal(batch["label"].cpu(), want["label"])
        assert torch.equal(batch["video_id"], want["video_id"])  # stays on the host (evaluate_videos sizes by it)


def test_a_ray_trial_computes_on_the_cpus_it_was_assigned(monkeypatch):
    import ray

    from trainers import ray_adapter

    class Context:
        def __init__(self, cpus):
            self.cpus = cpus

        def get_assigned_resources(self):
            return {"CPU": self.cpus}

    before = torch.get_num_threads()
    try:
        for cpus, threads in ((1.0, 1), (2.5, 2), (0.5, 1)):
            monkeypatch.setattr(ray, "get_runtime_context", lambda: Context(cpus))
            assert ray_adapter.use_assigned_cpus() == threads == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
