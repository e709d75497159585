"""The CUDA paths of trainers.device and trainers.trial, with CUDA mocked (no GPU here): the GPU
check (tests/benchmarks/gpu_check.py) runs them on a real one."""

import warnings

import pytest
import torch

from trainers.device import Runtime

CUDA = torch.device("cuda", 0)


@pytest.fixture
def gpu(monkeypatch):
    """A mocked CUDA device of a given compute capability; bf16 'supported' everywhere, as torch's
    `is_bf16_supported()` (including_emulation=True) answers on a V100 or T4."""

    def make(capability: tuple[int, int]):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
        return CUDA

    yield make
    torch.backends.cudnn.benchmark = False


def select(precision, device):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GradScaler("cuda") warns that CUDA is not really there
        return Runtime.select(precision, device)


@pytest.mark.parametrize(
    "capability, precision, scaled",
    [((7, 0), "fp16", True), ((7, 5), "fp16", True), ((8, 0), "bf16", False), ((9, 0), "bf16", False)],
)
def test_auto_takes_bf16_only_where_the_gpu_computes_it_natively(gpu, capability, precision, scaled):
    rt = select("auto", gpu(capability))
    assert rt.precision == precision
    assert (rt.scaler is not None) == scaled
    assert f"compute capability {capability[0]}.{capability[1]}" in rt.reason
    assert ("not native" in rt.reason) == scaled


def test_explicit_precisions_and_the_cpu_say_why(gpu):
    assert select("bf16", gpu((7, 0))).precision == "bf16"  # on request, even where emulated
    assert "on request" in select("bf16", gpu((7, 0))).reason
    cpu = Runtime.select("auto", torch.device("cpu"))
    assert cpu.precision == "fp32" and cpu.reason == "cpu, auto: the CPU trains in fp32"


def test_a_step_faster_than_the_probe_reprobes_then_is_capped_at_100_percent(monkeypatch):
    # the failure seen in CI: a preempted probe read a quarter of the machine's peak, so a trial
    # reported 413 % efficiency
    from trainers.trial import _timed

    rt = Runtime.select("fp32", torch.device("cpu"))
    probes = iter([3e9, 5e9])  # the re-probes, still slower than the measured pass
    monkeypatch.setattr(Runtime, "peak_flops", lambda self, **kw: next(probes))
    out = []
    report = _timed(lambda r, s: out.append(r), rt, macs_per_clip=1e9)
    for _ in range(2):
        report({"train_clips_per_s": 1.0, "peak_gflops_per_s": 1.5, "workers": 1}, {})  # 6 GFLOP/s achieved
    assert [r["achieved_gflops_per_s"] for r in out] == [6.0, 6.0]  # the measurement is kept as it is
    assert [r["peak_gflops_per_s"] for r in out] == [3.0, 5.0]  # raised by each re-probe, never lowered
    assert [r["efficiency"] for r in out] == [1.0, 1.0] and all(r["efficiency_capped"] for r in out)
    report({"train_clips_per_s": 0.5, "peak_gflops_per_s": 1.5, "workers": 1}, {})  # 3 GFLOP/s: no re-probe
    assert out[-1]["peak_gflops_per_s"] == 5.0 and out[-1]["efficiency"] == 0.6 and not out[-1]["efficiency_capped"]


def test_the_probe_runs_in_tf32_where_fp32_convolutions_do(monkeypatch):
    # CUDA mocked: the probe's tensors live on the CPU, torch.mm records the math mode it ran in
    real_randn, real_generator, real_mm = torch.randn, torch.Generator, torch.mm
    monkeypatch.setattr(torch, "Generator", lambda device=None: real_generator())
    monkeypatch.setattr(torch, "randn", lambda *a, device=None, dtype=None, generator=None: real_randn(*a, dtype=dtype))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    modes = []
    monkeypatch.setattr(torch, "mm", lambda a, b: modes.append(torch.backends.cuda.matmul.allow_tf32) or real_mm(a, b))
    assert torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32  # torch's defaults
    fp32 = Runtime(CUDA, None, channels_last=True, scaler=None)
    fp32.peak_flops(seconds=0.01, size=8)
    assert modes and all(modes)  # TF32, like cuDNN's fp32 convolutions
    assert not torch.backends.cuda.matmul.allow_tf32  # restored
    modes.clear()
    Runtime(CUDA, torch.bfloat16, channels_last=True, scaler=None).peak_flops(seconds=0.01, size=8)
    assert modes and not any(modes)  # bf16 has no TF32 mode to pick


def test_memory_peaks_allocated_and_reserved_reset_per_epoch(monkeypatch):
    from trainers.trial import _timed

    calls = []
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 2 * 1024**3)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 3 * 1024**3)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    out = []
    report = _timed(lambda r, s: out.append(r), Runtime(CUDA, torch.bfloat16, channels_last=True, scaler=None))
    report({"epoch": 1}, {})
    assert out[0]["measured_memory_gb"] == 2.0 and out[0]["measured_reserved_gb"] == 3.0
    assert calls == ["reset"]  # the next epoch's peak is its own


def test_a_trial_resets_the_peaks_after_the_probe_and_empties_the_cache_at_its_end(synth_root, monkeypatch):
    from tests.trainers.test_trial import collect, config

    log = []
    monkeypatch.setattr(Runtime, "peak_flops", lambda self, **kw: log.append("probe") or 1e12)
    monkeypatch.setattr(Runtime, "release", lambda self: log.append("release"))
    monkeypatch.setattr(Runtime, "reset_memory_peaks", lambda self: log.append("reset"))
    collect(config(synth_root, epochs=2))
    assert log == ["probe", "release", "reset", "reset", "reset", "release"]  # probe, 2 epochs, the end


def oom_at(monkeypatch, epochs_failing: dict[int, int], *, shared: bool):
    """Run epochs raise CUDA's OOM `epochs_failing[epoch]` times (CPU trial, the share mocked)."""
    import trainers.loop as loop
    import trainers.trial as trial

    monkeypatch.setattr(trial, "SHARED_OOM_WAIT_S", 0.0)
    if shared:

        def limit(self, share, usable_gb=None):
            self.shared = True
            return {"gpu_share": 0.25}

        monkeypatch.setattr(Runtime, "limit_memory", limit)
    real = loop.train_one_epoch

    def train_one_epoch(model, loader, *args, **kw):
        e = loader.epoch + 1
        if epochs_failing.get(e, 0) > 0:
            epochs_failing[e] -= 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, loader, *args, **kw)

    monkeypatch.setattr(loop, "train_one_epoch", train_one_epoch)


def test_an_oom_on_a_shared_gpu_is_retried_from_the_last_checkpoint(synth_root, monkeypatch):
    from tests.trainers.test_trial import collect, config

    cfg = config(synth_root, epochs=3, eval_every=3)
    _, plain, _ = collect(cfg)
    oom_at(monkeypatch, {2: 1}, shared=True)
    result, records, _ = collect(cfg)
    assert [r["epoch"] for r in records] == [1, 2, 3] and result["status"] == "completed"  # the OOM is not reported
    assert [r.get("oom_retries", 0) for r in records] == [0, 1, 1]
    # resumed from epoch 1's checkpoint as it was then, not from the weights the failed epoch changed
    assert [r["train_loss"] for r in records] == [r["train_loss"] for r in plain]


def test_a_repeated_oom_on_a_shared_gpu_is_reported_as_such_and_a_whole_gpus_stays_the_architectures(
    synth_root, monkeypatch
):
    from tests.trainers.test_trial import collect, config

    oom_at(monkeypatch, {1: 99}, shared=True)
    result, records, _ = collect(config(synth_root, epochs=2))
    assert [r["status"] for r in records] == ["oom-shared"] and result is records[0]
    assert result["oom_retries"] == 2 and "shared with other trials (share 0.25), after 2 retries" in result["reason"]
    monkeypatch.undo()
    oom_at(monkeypatch, {1: 1}, shared=False)
    result, records, _ = collect(config(synth_root, epochs=2))
    assert [r["status"] for r in records] == ["oom"] and "oom_retries" not in result  # no retry


def test_compile_starts_each_trial_with_an_empty_dynamo_cache(synth_root, monkeypatch):
    # in a reused Ray actor every trial compiles the same forward code: without a reset each new
    # network is a recompile, until Dynamo's recompile limit sends the trial back to eager
    from tests.trainers.test_trial import collect, config

    resets = []
    monkeypatch.setattr(torch.compiler, "reset", lambda: resets.append(1))
    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)  # compiling itself is not the point here
    collect(config(synth_root, epochs=1, compile=True))
    collect(config(synth_root, epochs=1, compile=True))
    assert len(resets) == 2


def test_the_probe_halves_its_matrices_until_they_fit_a_small_share(monkeypatch):
    # the allocator limit of a small share may be below three 8192² buffers (768 MiB in fp32)
    real_randn, real_generator = torch.randn, torch.Generator
    sizes = []

    def randn(n, m, *, device=None, dtype=None, generator=None):
        sizes.append(n)
        if n > 1024:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 256.00 MiB")
        return real_randn(4, 4, dtype=dtype)

    monkeypatch.setattr(torch, "randn", randn)
    monkeypatch.setattr(torch, "Generator", lambda device=None: real_generator())
    monkeypatch.setattr(Runtime, "release", lambda self: None)
    monkeypatch.setattr(Runtime, "synchronize", lambda self: None)
    peak = Runtime(CUDA, torch.bfloat16, channels_last=True, scaler=None).peak_flops(seconds=0.01)
    assert sorted(set(sizes), reverse=True) == [8192, 4096, 2048, 1024] and peak > 0


def test_a_trial_limits_itself_to_the_share_it_was_given(synth_root, monkeypatch):
    from tests.trainers.test_trial import collect, config

    asked = []
    monkeypatch.setattr(
        Runtime, "limit_memory", lambda self, share, usable_gb=None: asked.append((share, usable_gb)) or {}
    )
    collect(config(synth_root, epochs=1), gpu_share=0.25, gpu_usable_gb=72.0)  # what the Ray adapter passes
    assert asked == [(0.25, 72.0)]
