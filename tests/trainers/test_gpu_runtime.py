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
