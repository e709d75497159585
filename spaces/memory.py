"""Peak memory of one training step, predicted from shapes alone (beside spaces.cost).

`memory(spec, batch, precision)` walks `cost(spec).layers` in forward order and counts what a
training step of `spaces.builder`'s module holds (SGD with momentum, the trainers' optimiser):

    parameters      P × 4 bytes (fp32 master weights, also under bf16/fp16 autocast)
    gradients       P × 4, allocated layer by layer as backward reaches them (set_to_none=True)
    optimiser       SGD momentum buffers, P × 4 (weight decay and Nesterov keep no state; Adam
                    would keep 2 P, not modelled)
    saved           what autograd keeps for backward: the clip batch (conv1's input), every conv
                    output (BatchNorm saves its input), every ReLU output (ReLU saves its result —
                    in place or not, one tensor per ReLU), the max-pool's output and its int64
                    indices, the pooled features and the log-softmax; BN outputs that feed a sum or
                    a ReLU are not kept separately
    autocast        bf16/fp16: activations at 2 bytes, plus the half-precision copies of the
                    weights autocast keeps for backward (P × 2) and of the clip batch
    transient       while backward runs through a layer: the gradient of its output and of its
                    input, plus the gradient accumulating at its block's input (the shortcut's)

The peak is the largest of the forward's end and every point of backward, where the saved
tensors of the layers behind are still held and the gradients of the layers already passed exist.
The benchmark `tests/benchmarks/test_memory_prediction.py` compares it with torch's own count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from spaces.arch import ArchSpec
from spaces.cost import cost

BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
GiB = 1024**3

# What one training process holds on its GPU beside the step's peak, not modelled above: charged once
# per trial process when trials share GPUs (search.gpu_packing; resources.gpu_process_overhead_gb).
# Assumed, not measured here (no GPU has run starch): the GPU check prints the real figures
# (tests/benchmarks/gpu_check.py).
CUDA_CONTEXT_GB = 0.5  # the CUDA context and the kernels torch, cuBLAS and cuDNN load: outside torch's allocator
PROCESS_OVERHEAD_GB = (
    1.0  # the context + cuBLAS/cuDNN workspaces + allocator rounding (the peak probe is freed before training)
)


@dataclass(frozen=True)
class Memory:
    batch: int
    precision: str
    params: int  # bytes of the fp32 parameters (and of the BN running statistics)
    grads: int  # bytes of all gradients (fewer exist at the peak when it falls inside backward)
    optimizer: int  # SGD momentum buffers
    saved: int  # activations autograd keeps for backward, the clip batch included
    transient: int  # the largest gradient working set of backward
    peak: int  # predicted peak allocated bytes of one training step

    @property
    def peak_gb(self) -> float:
        return self.peak / GiB

    def to_dict(self) -> dict:
        return {**asdict(self), "peak_gb": self.peak_gb}


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def memory(spec: ArchSpec, batch: int = 1, precision: str = "fp32") -> Memory:
    """Predicted peak memory of one SGD training step of `build(spec)` on a batch of `batch` clips."""
    if precision not in BYTES:
        raise ValueError(f"memory: precision {precision!r} is not valid; valid: {', '.join(BYTES)}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"memory: batch must be an integer >= 1, got {batch!r}")
    act = BYTES[precision]
    layers = cost(spec).layers
    # Per step of the forward order: (saved elements per clip, parameters, backward working set per clip)
    steps: list[tuple[int, int, int]] = []
    buffers = 0
    block_in = 0  # gradient accumulating at the current block's input (none in the stem)
    saved_bytes_extra = 0  # int64 max-pool indices (precision-independent), per clip
    first_of_block: set[str] = set()
    for i, l in enumerate(layers):
        name, out = l.name, _numel(l.out_shape)
        block = name.split(".")[0]
        if l.op == "fc":
            steps.append((_numel(l.in_shape) + 2 * l.out_shape[0], l.params, _numel(l.in_shape) + l.out_shape[0]))
            continue
        if block != "conv1" and block not in first_of_block:
            first_of_block.add(block)
            block_in = _numel(l.in_shape)
        if l.op == "conv":
            if i == 0:  # conv1 keeps the clip itself, and backward computes no gradient for the clip
                steps.append((out + _numel(l.in_shape), l.params, out))
                continue
            steps.append((out, l.params, _numel(l.in_shape) + out + block_in))
            continue
        buffers += 2 * l.out_shape[0]  # BN running mean and variance
        relus = 1 if l.relu else 0  # the slot's own ReLU on this BN (declared by its kind)
        parts = name.split(".")
        slot_end = _slot_ends(layers, i)
        if slot_end:
            if block == "conv1":
                relus += 1
            elif parts[1] != "shortcut":
                relus += 1  # the ReLU after a non-last slot, or the block's after the sum
        steps.append((relus * out, l.params, 2 * out + block_in))
        if block == "conv1" and slot_end and spec.stem_pool:
            pooled = _numel(layers[i + 1].in_shape)
            saved_bytes_extra += 8 * pooled  # int64 indices
            steps.append((pooled, 0, out + pooled))
    P = sum(s[1] for s in steps)
    params = 4 * (P + buffers)
    grads = 4 * P
    optimizer = 4 * P
    # autocast: half-precision copies of the weights (2 bytes each); the clip is counted above at 2 bytes
    # (its half copy, which conv1 saves) and its fp32 original adds 4 more
    half_copies = 2 * P + 4 * 3 * spec.frames * spec.crop * spec.crop * batch if act == 2 else 0
    saved_total = batch * (act * sum(s[0] for s in steps) + saved_bytes_extra) + half_copies
    fixed = params + optimizer + half_copies
    held = saved_total - half_copies
    peak = fixed + held  # the end of the forward pass
    grads_so_far = 0
    transient_max = 0
    for saved, p, work in reversed(steps):
        grads_so_far += 4 * p
        transient = batch * act * work
        transient_max = max(transient_max, transient)
        peak = max(peak, fixed + held + grads_so_far + transient)
        held -= batch * act * saved
    return Memory(batch, precision, params, grads, optimizer, saved_total, transient_max, peak)


def _slot_ends(layers, i: int) -> bool:
    """True if layer i (a BN) ends its slot: the next layer belongs to another slot or block."""
    name = layers[i].name
    if i + 1 == len(layers):
        return True
    nxt = layers[i + 1].name
    return _slot(nxt) != _slot(name)


def _slot(name: str) -> str:
    """conv1 / conv3_1.a / conv3_1.shortcut — the slot a layer belongs to."""
    parts = name.split(".")
    return parts[0] if parts[0] == "conv1" else ".".join(parts[:2])
