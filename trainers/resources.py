"""What one trial asks of the cluster, in the types both its users validate with: the Ray adapter
(`trainers.ray_adapter`, for users who build their own Tuner) and the experiment's `resources`
section (`search.config.Resources`). No Ray import: the experiment is validated before Ray starts.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict, model_validator

from spaces.validation import Bool, from_dict, spec

Workers = Annotated[int, Strict(), Field(ge=1, description="data-parallel workers (DDP) per trial")]
CPUs = Annotated[float, Strict(), Field(gt=0, description="CPUs per worker")]
GPUs = Annotated[float, Strict(), Field(ge=0, description="GPUs per worker; fractions share a GPU")]


@spec
class WorkerResources:
    """W workers of `cpus_per_worker` CPUs and `gpus_per_worker` GPUs; use_gpu with 0 GPUs = one each."""

    workers_per_trial: Workers = 1
    use_gpu: Bool = False
    cpus_per_worker: CPUs = 1
    gpus_per_worker: GPUs = 0

    @model_validator(mode="after")
    def _gpus_need_use_gpu(self) -> "WorkerResources":
        if self.gpus_per_worker > 0 and not self.use_gpu:
            raise ValueError(f"gpus_per_worker = {self.gpus_per_worker} needs use_gpu=True")
        if self.gpus_per_worker > 1:
            raise ValueError(
                f"gpus_per_worker = {self.gpus_per_worker:g}: each worker process uses one GPU; "
                "for more GPUs raise workers_per_trial (one GPU each)"
            )
        if self.workers_per_trial > 1 and 0 < self.gpus_per_worker < 1:
            raise ValueError(
                f"gpus_per_worker = {self.gpus_per_worker:g} with workers_per_trial = {self.workers_per_trial}: "
                "data-parallel workers need whole GPUs (NCCL refuses two ranks on one GPU); use "
                "gpus_per_worker: 1, or workers_per_trial: 1 to share a GPU"
            )
        return self

    @property
    def gpus(self) -> float:
        return float(self.gpus_per_worker or (1.0 if self.use_gpu else 0.0))

    @classmethod
    def of(cls, **fields) -> "WorkerResources":
        return from_dict(cls, fields, "Ray adapter resources")
