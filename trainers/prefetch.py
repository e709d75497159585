"""The next batch on the device before the step that needs it: a copy on a side stream (CUDA only).

    for batch in prefetch(loader, runtime):   # batch["video"], batch["label"] already on the device
        ...

On CUDA, while step i runs on the default stream, batch i + 1 is copied on a second stream (from
the loader's page-locked memory, straight into the model's memory format: `Runtime.to_device`);
before step i + 1 the default stream waits for that copy, and the tensors are marked as used by it
(`record_stream`) so that the caching allocator does not hand their memory to the next copy too
early. This is the pattern of NVIDIA's apex `data_prefetcher` and of PyTorch's own
pin_memory + non_blocking guidance. Anywhere else (the CPU) the batches pass through unchanged:
there is nothing to overlap, `Runtime.to_device` is then a no-op for the loader's channels-last
batches.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import torch

from trainers.device import Runtime

ON_DEVICE = ("video", "label")  # what the training step reads from a batch


def prefetch(batches: Iterable[dict], runtime: Runtime) -> Iterable[dict]:
    if runtime.device.type != "cuda":
        return batches
    return _cuda_prefetch(batches, runtime)


def _cuda_prefetch(batches: Iterable[dict], runtime: Runtime) -> Iterator[dict]:
    stream = torch.cuda.Stream(runtime.device)
    source = iter(batches)

    def start(batch: dict | None) -> dict | None:
        if batch is None:
            return None
        with torch.cuda.stream(stream):
            batch = dict(batch)
            batch["video"] = runtime.to_device(batch["video"])
            batch["label"] = batch["label"].to(runtime.device, non_blocking=True)
        return batch

    upcoming = start(next(source, None))
    try:
        while upcoming is not None:
            current = torch.cuda.current_stream(runtime.device)
            current.wait_stream(stream)
            for key in ON_DEVICE:
                upcoming[key].record_stream(current)
            batch, upcoming = upcoming, start(next(source, None))
            yield batch
    finally:
        if hasattr(source, "close"):
            source.close()
