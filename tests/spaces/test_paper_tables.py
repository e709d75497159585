"""Our cost model against the numbers printed in the papers.

Params agree within 1 %. The papers' FLOPs sit 2–11 % below all-layer multiply-accumulates; they
match the MACs of the residual-block convolutions alone (no conv1, no shortcuts, no fc) within
about 5 %, so that is what `block_flops` is compared with. Two printed values cannot be matched by
any architecture and are tested against what they must be instead:
- Res3D Table 6 lists MC2 (9.7 G) below MC1 (10.2 G), but MC2 is MC1 plus a 3D conv1, which only
  adds FLOPs; our MC2 block FLOPs equal MC1's and its all-layer FLOPs exceed MC1's.
- Res3D Table 7's D10 is 5.4 % above the paper (11.4 vs 10.8 G), just outside 5 %.
"""

import pytest

from spaces import cost, named
from spaces.width import solve_width

RES3D = {"frames": 4, "num_classes": 101, "temporal_stride": "all"}


def close(ours: float, paper: float, tol: float) -> bool:
    return abs(ours - paper) / paper <= tol


@pytest.mark.parametrize(
    "name, frames, params_m, gflops",
    [
        ("resnet18_2d", 1, 11.2, 1.6),
        ("resnet34_2d", 1, 21.5, 3.5),
        ("r3d_18", 8, 33.2, 19.3),
        ("r3d_34", 8, 63.5, 36.7),
    ],
)
def test_res3d_table3_2d_and_3d_resnets(name, frames, params_m, gflops):
    c = cost(named(name, frames=frames, num_classes=101, crop=112, stem_kernel=7))
    assert close(c.params / 1e6, params_m, 0.01)
    # The 2D networks' 1.6 / 3.5 G are ~6 % under their block MACs (1.68 / 3.53 G at 112×112).
    assert close(c.block_flops / 1e9, gflops, 0.05 if frames > 1 else 0.07)


@pytest.mark.parametrize("crop, params_m, gflops", [(56, 33.2, 2.6), (112, 33.2, 10.3), (224, 33.3, 42.9)])
def test_res3d_table5_resolution(crop, params_m, gflops):
    # Res3D §3.4's text gives strides 1×1×1 / 1×4×4 for crops 56 / 224, but Table 5's FLOPs only
    # come out with 1×2×2 at every crop; the kernels 5 / 7 / 11 are what move 33.2 → 33.3 M.
    c = cost(named("sr18", crop=crop))
    assert close(c.params / 1e6, params_m, 0.01)
    assert close(c.block_flops / 1e9, gflops, 0.05)
    text_stride = {56: 1, 112: 2, 224: 4}[crop]
    if text_stride != 2:
        text = cost(named("sr18", crop=crop, stem_stride=text_stride))
        assert not close(text.block_flops / 1e9, gflops, 0.5)


TABLE6 = {  # name: (k, params M, GFLOPs) — Res3D Table 6 / 13, 101 classes, 4×112×112
    "mc1": (109, 32.5, 10.2),
    "mc2": (109, 32.5, 9.7),
    "mc3": (108, 32.8, 20.8),
    "mc4": (103, 32.4, 22.6),
    "mc5": (90, 33.0, 18.7),
    "2.5d": (64, 33.2, 10.3),
    "sr18": (64, 33.2, 10.3),
}


@pytest.mark.parametrize("name", TABLE6)
def test_res3d_table6_conv_mixtures(name):
    k, params_m, gflops = TABLE6[name]
    spec = named(name, **RES3D)
    if name.startswith("mc"):  # the width solver reproduces the paper's k
        assert solve_width(spec, "33.0M", "under") == k
    c = cost(spec.replace(width=k))
    assert close(c.params / 1e6, params_m, 0.01)
    assert close(c.block_flops / 1e9, gflops, 0.05)


def test_res3d_table13_output_sizes_halve_time_in_2d_stages():
    c = cost(named("mc1", width=109, **RES3D))
    out = {l.name.split(".")[0]: l.out_shape[1:] for l in c.layers}
    assert [out[n] for n in ("conv1", "conv2_2", "conv3_2", "conv4_2", "conv5_2")] == [
        (4, 56, 56),
        (4, 56, 56),
        (2, 28, 28),
        (1, 14, 14),
        (1, 7, 7),
    ]
    # R(2+1)D §4.1 instead keeps time in 2D stages (torchvision mc3_18).
    c = cost(named("mc3", frames=8, temporal_stride="conv"))
    assert c.layers[-2].out_shape[1] == 8


def test_res3d_table6_mc2_is_not_below_mc1():
    mc1, mc2 = (cost(named(n, width=109, **RES3D)) for n in ("mc1", "mc2"))
    assert mc2.block_flops == mc1.block_flops and mc2.flops > mc1.flops


TABLE7 = {
    "d10": (98, 97, 33.7, 10.8),
    "d16": (85, 85, 33.6, 16.7),
    "d18": (64, 64, 33.2, 10.3),
    "d26": (50, 50, 33.8, 8.4),
    "d34": (46, 46, 32.8, 10.0),
}  # paper k, solver k, params M, GFLOPs


@pytest.mark.parametrize("name", TABLE7)
def test_res3d_table7_depth(name):
    paper_k, solved_k, params_m, gflops = TABLE7[name]
    budget = cost(named("sr18")).params
    assert solve_width(named(name), budget, "nearest") == solved_k
    c = cost(named(name, width=paper_k))
    assert close(c.params / 1e6, params_m, 0.01)
    tol = 0.06 if name == "d10" else 0.05  # D10: +5.4 %, see module docstring
    assert close(c.block_flops / 1e9, gflops, tol)
    if name == "d10":  # the paper's k = 98 overshoots SR18's budget by 1.5 %
        assert close(c.params / budget, 1.015, 0.002)


R2PLUS1D_TABLE2 = {
    "r2d": 11.4,
    "f-r2d": 11.4,
    "r3d_18": 33.4,
    "mc2": 11.4,
    "mc3": 11.7,
    "mc4": 12.7,
    "mc5": 16.9,
    "rmc2": 33.3,
    "rmc3": 33.0,
    "rmc4": 32.0,
    "rmc5": 27.9,
    "r2plus1d_18": 33.3,
}


@pytest.mark.parametrize("name", R2PLUS1D_TABLE2)
def test_r2plus1d_table2_params(name):
    c = cost(named(name, num_classes=400, frames=8))
    assert close(c.params / 1e6, R2PLUS1D_TABLE2[name], 0.01)


def test_r2plus1d_stem_formula_and_official_width():
    from spaces.blueprint import factorised_mid

    assert factorised_mid("2plus1d", 3, 64, 3, 7) == 83  # the formula
    assert factorised_mid("2.5d", 64, 64, 3, 3) == 144  # ⌈3·64·64·9 / (64·9 + 3·64)⌉
    formula = cost(named("r2plus1d_18", stem_mid=None))
    official = cost(named("r2plus1d_18"))  # 45, as the released code and torchvision
    assert formula.params > official.params


def test_torchvision_r3d_18_gflops_metadata():
    # torchvision documents r3d_18 at 16×112×112 as 40.70 GFLOPS (MACs of every conv and the fc).
    assert round(cost(named("r3d_18", frames=16, num_classes=400)).gflops, 2) == 40.70
    assert round(cost(named("mc3", frames=16, num_classes=400)).gflops, 2) == 43.34


def test_p3d_199_parameter_count():
    assert cost(named("p3d_199", num_classes=487)).params == 66_670_503


def test_p3d_table1_and_figure1_model_sizes():
    # P3D Table 1 (UCF101): ResNet-50 92 MB, every P3D ResNet 98 MB. The paper does not say whether
    # MB are 10^6 or 2^20 bytes; our float32 sizes sit 2.6–3.1 % above its figures in 10^6 bytes, and
    # the ratio, which the unit cancels, matches within 1 %. It only matches with res5 kept 2D.
    r50 = cost(named("resnet50_2d")).megabytes
    for name in ("p3d_a_50", "p3d_b_50", "p3d_c_50", "p3d_50"):
        mb = cost(named(name)).megabytes
        assert close(mb / r50, 98 / 92, 0.01)
        assert close(mb, 98, 0.035)
        res5_3d = cost(named(name, convs=named(name).convs[:4] + ("p3d-a",))).megabytes
        assert not close(res5_3d / r50, 98 / 92, 0.05)
    assert close(r50, 92, 0.035)
    # Figure 1 (Sports-1M, 487 classes): ResNet-152 235 MB, P3D ResNet-199 261 MB.
    assert close(cost(named("resnet152_2d", num_classes=487)).megabytes, 235, 0.01)
    assert close(cost(named("p3d_199", num_classes=487)).megabytes, 261, 0.025)
