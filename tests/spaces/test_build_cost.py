"""The analytic cost model must equal what the built module really has.

params: exactly sum(p.numel()); FLOPs: exactly half of torch's FlopCounterMode (it counts 2 per
multiply-accumulate); activations: exactly the conv + BN output elements seen by forward hooks.
"""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from spaces import NETWORKS, ArchSpec, build, cost, named
from spaces.arch import STAGE_KINDS, STEM_KINDS
from spaces.kinds import BOTTLENECK_KINDS


def measure(spec: ArchSpec, batch: int = 2):
    """Build `spec`, run one forward pass and return (params, flops/2, activations, logits)."""
    torch.manual_seed(0)
    model = build(spec).eval()
    seen = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(out.numel()))
        for m in model.modules()
        if isinstance(m, (nn.Conv3d, nn.BatchNorm3d))
    ]
    x = torch.randn(batch, 3, spec.frames, spec.crop, spec.crop)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        logits = model(x)
    for h in hooks:
        h.remove()
    params = sum(p.numel() for p in model.parameters())
    return params, counter.get_total_flops() // (2 * batch), sum(seen) // batch, logits


@st.composite
def specs(draw):
    block = draw(st.sampled_from(["basic", "bottleneck"]))
    stem = draw(st.sampled_from(STEM_KINDS))
    stage_kinds = [k for k in STAGE_KINDS if block == "bottleneck" or k not in BOTTLENECK_KINDS]
    stages = ["2d"] * 4 if stem == "fold" else [draw(st.sampled_from(stage_kinds)) for _ in range(4)]
    stem_pool = draw(st.booleans())
    return ArchSpec(
        convs=(stem, *stages),
        blocks=tuple(draw(st.integers(1, 2)) for _ in range(4)),
        block=block,
        # γb: ResNet's 1/4, X3D's 2.25, and ratios whose int(γb × width) rounds down
        bottleneck_ratio=draw(st.sampled_from([0.25, 0.5, 1, 2.25, 0.3])) if block == "bottleneck" else 0.25,
        width=draw(st.integers(1, 6)),
        frames=draw(st.integers(1, 6)),
        crop=draw(st.integers(32 if stem_pool else 16, 33)),
        num_classes=draw(st.integers(1, 7)),
        temporal_stride=draw(st.sampled_from(["all", "conv", "none"])),
        stem_kernel=draw(st.sampled_from([None, 3, 5])),
        stem_pool=stem_pool,
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_cost_equals_built_module_on_random_specs(spec):
    params, flops, activations, logits = measure(spec)
    c = cost(spec)
    assert c.params == params
    assert c.flops == flops
    assert c.activations == activations
    assert logits.shape == (2, spec.num_classes)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_named_network_builds_and_matches_its_cost(name):
    # Shrunk so the whole zoo runs in seconds; the structure (kinds, blocks, rules) is unchanged.
    spec = named(name, width=4, crop=max(32, NETWORKS[name].crop // 5), frames=min(NETWORKS[name].frames, 4))
    params, flops, activations, logits = measure(spec, batch=1)
    c = cost(spec)
    assert (c.params, c.flops, c.activations) == (params, flops, activations)
    assert logits.shape == (1, spec.num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["sr18", "r2plus1d_18", "mc3", "2.5d"])
def test_full_size_params_match_the_module(name):
    spec = named(name)
    assert cost(spec).params == sum(p.numel() for p in build(spec).parameters())


def test_layer_table_sums_to_totals():
    c = cost(named("r2plus1d_18"))
    rows = c.table()
    assert sum(r["params"] for r in rows) == c.params
    assert sum(r["macs"] for r in rows) == c.flops
    assert rows[0]["name"] == "conv1.spatial" and rows[-1]["name"] == "fc"
    assert c.block_flops < c.flops


def test_activation_bytes_scale_with_batch_and_dtype():
    c = cost(named("sr18"))
    assert c.activation_bytes(batch=8, bytes_per_element=2) == c.activations * 16


def test_backward_works_and_train_mode_matches_shapes():
    spec = named("r2plus1d_18", width=4, crop=32, frames=4, num_classes=5)
    model = build(spec).train()
    loss = model(torch.randn(2, 3, 4, 32, 32)).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def _block_input(block) -> torch.Tensor:
    cin = next(m for m in block.modules() if isinstance(m, nn.Conv3d)).in_channels
    return torch.randn(2, cin, 4, 8, 8)  # (B, C, T, H, W)


@pytest.mark.parametrize("name", ["r3d_18", "r2plus1d_18", "p3d_b_50", "mc3"])
def test_zero_init_residual_starts_every_block_as_its_shortcut(name):
    from spaces.builder import ResidualBlock

    torch.manual_seed(0)
    spec = named(name, width=4, frames=4, crop=32, num_classes=3)
    plain, zeroed = build(spec), build(spec, zero_init_residual=True)
    blocks = [b for b in zeroed.modules() if isinstance(b, ResidualBlock)]
    assert len(blocks) == sum(spec.blocks)
    for block in blocks:
        x = _block_input(block)
        assert torch.equal(block(x), torch.relu(block.shortcut(x)))  # train-mode BN: the branch is 0
    first = next(b for b in plain.modules() if isinstance(b, ResidualBlock))
    x = _block_input(first)
    assert not torch.equal(first(x), torch.relu(first.shortcut(x)))  # the default init has a branch
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in zeroed.parameters())
