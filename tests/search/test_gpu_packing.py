"""resources.gpus_per_trial: auto — GPU fractions from predicted memory, infeasible when no GPU fits."""

import json

import pytest

from search.cli import main
from search.config import Resources, load_experiment
from search.gpu_packing import gpu_share, predicted, resources_fn, trials_per_gpu
from search.tuner import plan
from spaces.memory import GiB
from tests.search.test_failures import max_overlap, records

# f-R2D (≈3.7 MiB predicted at batch 8) fits twice, R2D (≈1.4 MiB) five times into the 8 MiB a
# "GPU" of 0.0087 GiB leaves after 10 % headroom; R(2+1)D (≈12.7 MiB) fits none. No per-process
# overhead: it would be larger than this whole GPU (test_the_overhead_… charges it).
BODY = """
resources:
  gpus_per_trial: auto
  gpu_memory_gb: 0.0087
  gpu_process_overhead_gb: 0
  max_trials_per_gpu: 8
  cpus_per_trial: 1
"""


def packed_experiment(make_experiment, name="auto"):
    path = make_experiment(name=name, body=BODY)
    text = path.read_text().replace("resources:\n  cpus_per_trial: 1\n", "", 1)
    text = text.replace("network: [r3d_18, f-r2d, mc3]", "network: [r2d, f-r2d, r2plus1d_18]")
    path.write_text(text.replace("  epochs: 2\n", "  epochs: 1\n  precision: fp32\n"))
    return path


def test_fraction_is_one_over_how_many_fit():
    assert [trials_per_gpu(c, 10, cap=8) for c in (3, 5, 6, 11)] == [3, 2, 1, None]
    assert gpu_share(3) == 0.3333 and gpu_share(2) == 0.5 and gpu_share(1) == 1.0
    with pytest.raises(ValueError, match="data-parallel"):
        Resources(gpus_per_trial="auto", workers_per_trial=2)
    with pytest.raises(ValueError, match="must be a number >= 0 or auto, got 'all'"):
        Resources(gpus_per_trial="all")


def test_plan_rejects_what_fits_no_gpu_and_requests_follow_the_prediction(make_experiment):
    exp = load_experiment(packed_experiment(make_experiment))
    p = plan(exp)
    assert sorted(c.arch.name for c in p.candidates) == ["R2D", "f-R2D"]
    assert [i["arch"]["name"] for i in p.infeasible] == ["R(2+1)D"]
    assert "gpu_memory over its limit" in p.infeasible[0]["reason"]
    request = resources_fn(exp)
    usable = 0.0087 * GiB * 0.9
    for c in p.candidates:
        bundle = request(
            {
                "candidate": {"arch": c.arch.to_dict(), "axes": c.axes},
                "data": exp.to_data().to_dict(),
                "recipe": exp.schedule.to_dict(),
            }
        ).bundles[0]
        assert bundle == {"CPU": 1, "GPU": gpu_share(trials_per_gpu(predicted(c.arch, exp).peak, usable, 8))}
        assert bundle["GPU"] == {"R2D": 0.2, "f-R2D": 0.5}[c.arch.name]
        sampled = {
            "axes": c.axes,
            "space": exp.to_space().to_dict(),
            "data": exp.to_data().to_dict(),
            "recipe": exp.schedule.to_dict(),
        }  # the form an Optuna sample takes
        assert request(sampled).bundles[0] == bundle


def test_trials_share_a_logical_gpu_by_predicted_memory(ray_cluster, make_experiment):
    node = ray_cluster.add_node(num_cpus=3, num_gpus=1)
    try:
        path = packed_experiment(make_experiment)
        assert main(["search", str(path), "--no-report"]) == 0
        run = path.parent / "runs" / "auto"
        recs = {r[0]["arch_name"]: r for r in records(run).values() if r}
        assert sorted(recs) == ["R2D", "f-R2D"]
        # 3 grid points on 1 GPU: at most 3 share it (search.gpu_packing.spread), so R2D asks 1/3
        assert {name: r[0]["gpus"] for name, r in recs.items()} == {"R2D": 0.3333, "f-R2D": 0.5}
        assert all(r[0]["cuda_visible_devices"] == "0" for r in recs.values())
        assert all(r[0]["predicted_memory_gb"] * GiB < 0.0087 * GiB * 0.9 for r in recs.values())
        spans = [(r[0]["started_at"], r[-1]["reported_at"]) for r in recs.values()]
        assert max_overlap(spans) == 2  # both ran on the one GPU at once (0.2 + 0.5 of it)
        infeasible = json.loads((run / "starch_infeasible.json").read_text())
        assert [i["arch"]["name"] for i in infeasible] == ["R(2+1)D"]
    finally:
        ray_cluster.remove_node(node)


def test_a_share_is_never_below_rays_resolution_and_trials_per_gpu_are_capped():
    # main: a network 1/20000 of the usable memory asked for floor(1e4 / 20000) / 1e4 = 0.0 GPUs, so
    # Ray hid the GPUs and the trial trained on the CPU
    assert trials_per_gpu(1, 20_000, cap=4) == 4
    assert gpu_share(4) == 0.25 and all(gpu_share(n) >= 0.001 for n in (999, 1000))
    with pytest.raises(ValueError, match="max_trials_per_gpu"):
        Resources(gpus_per_trial="auto", max_trials_per_gpu=1001)


def r3d_on_an_80gb_gpu(make_experiment, **resources):
    """The issue's example: R3D-18 at k = 64, 16×112², batch 20, bf16, on an 80 GB GPU."""
    extra = "".join(f"  {k}: {v}\n" for k, v in resources.items())
    path = make_experiment(name="r3d80", body=f"resources:\n  gpus_per_trial: auto\n  gpu_memory_gb: 80\n{extra}")
    text = path.read_text().replace("resources:\n  cpus_per_trial: 1\n", "", 1)
    text = text.replace("network: [r3d_18, f-r2d, mc3]", "network: [r3d_18]").replace("frames: 8", "frames: 16")
    text = (
        text.replace("crop: 32", "crop: 112").replace("width: 4", "width: 64").replace("  blocks: [1, 1, 1, 1]\n", "")
    )
    path.write_text(
        text.replace("batch_size: 8", "batch_size: 20").replace("  epochs: 2\n", "  epochs: 2\n  precision: bf16\n")
    )
    return load_experiment(path)


def test_the_overhead_of_each_process_is_charged_and_the_cap_holds(make_experiment):
    from search.gpu_packing import charged, share_of

    exp = r3d_on_an_80gb_gpu(make_experiment)
    arch = plan(exp).candidates[0].arch
    peak = predicted(arch, exp).peak
    assert 1.5 * GiB < peak < 3 * GiB  # about 2.1 GiB: main packed 34 of these onto one GPU
    assert charged(arch, exp) == peak + 1.0 * GiB  # the default gpu_process_overhead_gb
    assert share_of(arch, exp) == (0.25, 4)  # more fit by memory; the default cap is 4
    wide = r3d_on_an_80gb_gpu(make_experiment, max_trials_per_gpu=100)
    n = int(72 * GiB // (peak + GiB))  # 80 GiB less 10 % headroom, each trial charged its peak + 1 GiB
    assert share_of(arch, wide) == (gpu_share(n), n) and n < int(72 * GiB // peak)  # main: ⌊72 GiB / peak⌋


def test_trials_are_spread_over_the_gpus_not_piled_on_one(make_experiment):
    from search.gpu_packing import spread
    from search.run import check_resources

    exp = load_experiment(packed_experiment(make_experiment))  # 3 grid points, max_trials_per_gpu 8
    assert spread(exp, 1) == 3 and spread(exp, 2) == 2 and spread(exp, 4) == 1
    # Ray fills one GPU's fractions before the next: on 4 GPUs, 3 trials get a GPU each
    assert check_resources(exp, {"CPU": 8, "GPU": 4}).resources.max_trials_per_gpu == 1
    assert check_resources(exp, {"CPU": 8, "GPU": 1}).resources.max_trials_per_gpu == 3


def test_gpu_memory_is_read_as_what_is_free_on_every_gpu(monkeypatch):
    import torch

    from search.gpu_packing import free_gpu_memory_gb

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    free = {0: 70 * GiB, 1: 12 * GiB}  # another process holds most of GPU 1
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=None: (free[i], 80 * GiB))
    assert free_gpu_memory_gb() == 12.0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert free_gpu_memory_gb() is None


def test_a_trial_on_a_shared_gpu_limits_its_allocator_to_its_share(monkeypatch):
    import types

    import torch

    from spaces.memory import CUDA_CONTEXT_GB
    from trainers.device import Runtime

    set_to = []
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: types.SimpleNamespace(total_memory=80 * GiB))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, d=None: set_to.append(f))
    rt = Runtime(torch.device("cuda", 0), torch.bfloat16, channels_last=True, scaler=None)
    limit = rt.limit_memory(0.25, usable_gb=72.0)
    assert limit == {"gpu_share": 0.25, "gpu_memory_limit_gb": 18.0 - CUDA_CONTEXT_GB}
    assert set_to == [pytest.approx((18.0 - CUDA_CONTEXT_GB) / 80)]
    assert rt.limit_memory(1.0, usable_gb=72.0) == {} and set_to[1:] == [1.0]  # a whole GPU: no limit
    with pytest.raises(ValueError, match="lower resources.max_trials_per_gpu"):
        rt.limit_memory(0.001, usable_gb=72.0)


def test_dry_run_prints_each_trials_gpu_share(make_experiment, capsys, monkeypatch):
    from search import run

    path = packed_experiment(make_experiment)

    def dry_run(*args):
        assert main(["search", str(path), "--dry-run", *args]) == 0
        out = capsys.readouterr().out
        return out, {line.split()[1]: line for line in out.splitlines() if line[:3].strip().isdigit()}

    out, lines = dry_run("--address", "auto")  # a cluster: its GPUs are counted when the run starts
    assert "charged its predicted peak + 0 GiB per process, at most 8 trial(s) per GPU" in out
    assert lines["r2d"].endswith("ok, GPU 0.2 (5 share a GPU)")
    assert lines["f-r2d"].endswith("ok, GPU 0.5 (2 share a GPU)")
    assert "infeasible: gpu_memory over its limit" in lines["r2plus1d_18"]
    monkeypatch.setattr(run, "local_resources", lambda exp: {"CPU": 4.0, "GPU": 2.0})
    out, lines = dry_run()  # the local Ray's 2 GPUs: 3 trials, at most 2 per GPU
    assert "at most 2 trial(s) per GPU" in out and lines["r2d"].endswith("ok, GPU 0.5 (2 share a GPU)")


def test_every_gpu_node_is_probed_and_logical_gpus_cannot_tell(ray_cluster):
    # one probe task per alive GPU node, pinned to it (the path a real cluster takes); logical GPUs
    # (no CUDA behind them) answer None, and a run then asks for resources.gpu_memory_gb
    from search.gpu_packing import detect_gpu_memory_gb

    nodes = [ray_cluster.add_node(num_cpus=1, num_gpus=1) for _ in range(2)]
    try:
        ray_cluster.wait_for_nodes()
        assert detect_gpu_memory_gb(timeout_s=120) is None
    finally:
        for node in nodes:
            ray_cluster.remove_node(node)
