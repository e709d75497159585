"""The experiment file: YAML validated into a typed config at the edge, trusted inside.

    name: conv-mixture
    space:        {network: [mc2, mc3, sr18], frames: 4, budget: 33.0M}   # axes (scalars = fixed)
    width_rule:   under
    constraints:  {budget_tolerance: 0.05, max_gflops: 50, max_activation_gb: 16}
    data:         {format: ucf101, root: /data/ucf101, split: 1, batch_size: 20}
    schedule:     {epochs: 15, lr: 0.01, lr_step_epochs: 3}               # trainers.Recipe
    search:       {algorithm: grid, num_samples: 1, metric: video@1, mode: max, repeats: 1, seed: 0}
    scheduler:    {type: asha, grace_period: 1, reduction_factor: 3}
    resources:    {gpus_per_trial: 1, cpus_per_trial: 4, workers_per_trial: 1, max_concurrent_trials: null}
    cluster:      {address: null, storage: runs}
    failures:     {max_failures: 2, max_preemptions: 10}
    logging:      {tensorboard: true, mlflow: {tracking_uri: …}, wandb: {project: …, mode: offline}}
    promoted_from: {run: runs/proxy, selection: front, metric: video@1, networks: […]}   # starch promote

Every error names the field path, the bad value and what is valid; unknown keys are errors.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator

from spaces.memory import PROCESS_OVERHEAD_GB
from spaces.space import AXES, Space
from spaces.validation import format_errors
from trainers.data.datasets import MIN_CROP, DataSpec
from trainers.recipe import Recipe
from trainers.resources import CPUs, Workers

PRESET_DIR = Path(__file__).with_name("presets")
# what each trial's architecture decides, not the data section (trainers.trial.align)
PER_TRIAL_DATA = {"clip_len": "space.frames", "sampling_rate": "space.sampling_rate", "crop": "space.crop"}
METRICS = ("video@1", "video@5", "clip@1", "train_acc", "train_loss", "test_loss", "gflops", "params")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Constraints(_Strict):
    budget_tolerance: float | None = Field(None, gt=0, lt=1, description="params within ±this fraction of the budget")
    max_gflops: float | None = Field(None, gt=0)
    max_params: float | None = Field(None, gt=0)
    max_activation_gb: float | None = Field(
        None,
        gt=0,
        description="predicted peak memory of one training step "
        "(spaces.memory: weights, grads, momentum, saved activations), GiB",
    )


class SearchConfig(_Strict):
    algorithm: Literal["grid", "random", "tpe", "nsga2", "expand"] = "grid"
    num_samples: int = Field(1, ge=1, description="grid: passes over the grid; others: sampled trials")
    metric: str = "video@1"
    mode: Literal["max", "min"] = "max"
    # NSGA-II: the extra objectives, e.g. [gflops] with modes [min]
    objectives: list[str] = Field(default_factory=lambda: ["gflops"])
    objective_modes: list[Literal["max", "min"]] = Field(default_factory=lambda: ["min"])
    repeats: int = Field(1, ge=1, description="seeds per configuration, to show noise (grid only)")
    seed: int = Field(0, ge=0)
    # expand (X3D forward expansion, search/expand.py): grow until this many GFLOPs, ×factor per step
    target_gflops: float | None = Field(None, gt=0)
    expand_factor: float = Field(2.0, gt=1)

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"metric {v!r} is not reported; valid: {', '.join(METRICS)}")
        return v

    @model_validator(mode="after")
    def _objectives(self):
        if self.repeats > 1 and self.algorithm != "grid":
            # an Optuna sampler would see each seed as a separate observation of one point and the
            # schedulers would cut single seeds: refused rather than silently run once
            raise ValueError(
                f"repeats = {self.repeats} needs algorithm 'grid' (every point run with "
                f"{self.repeats} seeds); with {self.algorithm!r} each sampled configuration "
                "is one trial: set repeats: 1, or list the configurations as a grid"
            )
        if len(self.objectives) != len(self.objective_modes):
            raise ValueError("objectives and objective_modes must have the same length")
        for m in self.objectives:
            if m not in METRICS:
                raise ValueError(f"objective {m!r} is not reported; valid: {', '.join(METRICS)}")
        return self


class SchedulerConfig(_Strict):
    # moasha: ASHA's rungs, promotion by Pareto rank on [search.metric, *search.objectives]
    type: Literal["fifo", "asha", "hyperband", "moasha"] = "fifo"
    grace_period: int = Field(1, ge=1, description="epochs before ASHA may stop a trial")
    reduction_factor: float = Field(3, gt=1)


class Resources(_Strict):
    """Per trial; with workers_per_trial W > 1 the GPU and CPU numbers are per worker."""

    gpus_per_trial: float | Literal["auto"] = Field(
        0.0,
        description="fractional values pack trials onto one GPU; "
        "auto: the fraction each trial's predicted memory needs",
    )
    gpu_memory_gb: float | None = Field(None, gt=0, description="memory of each GPU (GiB) for auto; None: detected")
    gpu_memory_headroom: float = Field(0.1, ge=0, lt=1, description="fraction of a GPU auto keeps free")
    gpu_process_overhead_gb: float = Field(
        PROCESS_OVERHEAD_GB,
        ge=0,
        description="auto: GiB charged per trial process beside its predicted peak (CUDA context, workspaces)",
    )
    max_trials_per_gpu: int = Field(4, ge=1, le=1000, description="auto: at most this many trials share one GPU")
    cpus_per_trial: CPUs = 1
    workers_per_trial: Workers = 1
    max_concurrent_trials: int | None = Field(None, ge=1)

    @field_validator("gpus_per_trial", mode="before")
    @classmethod
    def _gpus(cls, v):
        if isinstance(v, str) and v != "auto":
            raise ValueError(f"gpus_per_trial must be a number >= 0 or auto, got {v!r}")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            raise ValueError("Input should be greater than or equal to 0 (or auto)")
        return v

    @model_validator(mode="after")
    def _ddp_whole_gpus(self):
        if self.gpus_per_trial == "auto":
            if self.workers_per_trial > 1:
                raise ValueError(
                    "gpus_per_trial = auto packs single-process trials onto GPUs; data-parallel "
                    f"trials (workers_per_trial = {self.workers_per_trial}) need whole GPUs: set 1"
                )
            return self
        if self.gpus_per_trial > 1:
            raise ValueError(
                f"gpus_per_trial = {self.gpus_per_trial:g}: each training process uses one GPU, so "
                f"the other {self.gpus_per_trial - 1:g} would idle; for several GPUs per trial set "
                f"gpus_per_trial: 1 and workers_per_trial: {max(2, math.ceil(self.gpus_per_trial)) * self.workers_per_trial} "
                "(data-parallel, one GPU per worker)"
            )
        if self.workers_per_trial > 1 and self.gpus_per_trial not in (0, int(self.gpus_per_trial)):
            raise ValueError(
                f"gpus_per_trial = {self.gpus_per_trial} with workers_per_trial = "
                f"{self.workers_per_trial}: data-parallel workers need whole GPUs (NCCL cannot "
                "put two ranks on one GPU); use 1 or more, or workers_per_trial: 1"
            )
        return self

    @property
    def auto_gpus(self) -> bool:
        return self.gpus_per_trial == "auto"

    @property
    def uses_gpus(self) -> bool:
        return self.auto_gpus or self.gpus_per_trial > 0


class Cluster(_Strict):
    address: str | None = None  # None: start a local Ray; "auto" or ray://host:10001 joins a cluster
    storage: str = "runs"  # local folder, NFS path or a URI Ray Tune accepts (s3://…)


class Failures(_Strict):
    max_failures: int = Field(2, ge=-1, description="retries per trial from its last checkpoint (-1: forever)")
    # a lost node (spot preemption, node death) is not the trial's fault: it is retried from the
    # last checkpoint without using a max_failures attempt, this many times (bounded: a node that
    # the trial itself brings down would otherwise retry forever)
    max_preemptions: int = Field(
        10, ge=-1, description="lost nodes a trial survives beside max_failures (-1: any number; 0: they count)"
    )


class MLflowLogging(_Strict):
    """Ray Tune's MLflowLoggerCallback: one MLflow run per trial (needs `pip install 'starch[mlflow]'`)."""

    tracking_uri: str | None = Field(
        None,
        description="e.g. http://mlflow:5000 or file:///nfs/mlruns; "
        "default: MLflow's own (MLFLOW_TRACKING_URI or ./mlruns)",
    )
    experiment_name: str | None = Field(None, description="default: the experiment's name")
    tags: dict[str, str] = Field(default_factory=dict)


class WandbLogging(_Strict):
    """Ray Tune's WandbLoggerCallback: one W&B run per trial (needs `pip install 'starch[wandb]'`)."""

    project: str
    group: str | None = Field(None, description="default: the experiment's name")
    entity: str | None = None
    mode: Literal["online", "offline", "disabled"] = "online"
    dir: str | None = Field(None, description="where wandb keeps its files (offline runs: `wandb sync DIR`)")


class LoggingConfig(_Strict):
    """Trackers besides the run folder; TensorBoard event files are written by default."""

    tensorboard: bool = True
    mlflow: MLflowLogging | None = None
    wandb: WandbLogging | None = None

    @field_validator("mlflow", mode="before")
    @classmethod
    def _mlflow_flag(cls, v: Any) -> Any:
        """`mlflow: true` is MLflow with its defaults; `false` is off."""
        return ({} if v else None) if isinstance(v, bool) else v


class PromotedNetwork(_Strict):
    """One network of a promoted run, in the order of its space's network list."""

    label: str  # the proxy report's label
    trials: list[str]  # the proxy's trials of this network (its seeds)
    why: str  # why it was chosen ("on the Pareto front …", "rank 2 of 6 …", "trial … listed")


class PromotedFrom(_Strict):
    """Where a `starch promote` run came from: the proxy run, how its networks were chosen."""

    run: str  # the proxy run folder (absolute path or URI)
    selection: str  # front | top K | trials
    metric: str
    networks: list[PromotedNetwork]


class Experiment(_Strict):
    """The experiment file, validated once: `data` and `schedule` are the trainers' own typed specs
    (a trial replaces the data's clip length, sampling rate and crop with its architecture's)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    space: dict[str, Any]
    width_rule: Literal["nearest", "under"] = "nearest"
    constraints: Constraints = Constraints()
    data: DataSpec
    schedule: Recipe = Recipe()
    search: SearchConfig = SearchConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    resources: Resources = Resources()
    cluster: Cluster = Cluster()
    failures: Failures = Failures()
    logging: LoggingConfig = LoggingConfig()
    promoted_from: PromotedFrom | None = None  # written by `starch promote` (search.promote)

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, raw: Any) -> Any:
        """data: the clip fields are the architecture's; schedule: the seed is search.seed unless given."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        data, schedule, search = raw.get("data"), raw.get("schedule", {}), raw.get("search", {})
        if isinstance(data, dict):
            for key, axis in PER_TRIAL_DATA.items():
                if key in data:
                    raise ValueError(
                        f"data.{key}: each trial takes it from its architecture ({axis} or the network's "
                        "own); remove it from data"
                    )
            raw["data"] = {**data, "crop": MIN_CROP}  # a stand-in until the space's crops are known (_deep)
        if isinstance(schedule, dict) and "seed" not in schedule and isinstance(search, dict):
            seed = search.get("seed", 0)
            if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
                raw["schedule"] = {**schedule, "seed": seed}
        return raw

    @field_validator("space")
    @classmethod
    def _space(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(v) - set(AXES))
        if unknown:
            raise ValueError(f"unknown axis {unknown}; valid axes: {', '.join(AXES)}")
        return {k: _choices(k, x) for k, x in v.items()}

    @model_validator(mode="after")
    def _deep(self):
        space = self.to_space()  # needs width_rule beside the space
        for crop in space.crops():
            try:
                self.data.replace(crop=crop)
            except ValueError as exc:
                raise ValueError(
                    f"data.{str(exc).removeprefix('DataSpec: ')} (the crop is the architecture's: space.crop or the "
                    f"network's own; this space has crops {space.crops()})"
                ) from None
        if self.search.algorithm == "expand":
            from search.expand import check_space

            check_space(self)
        return self

    @field_serializer("data")
    def _data_section(self, data: DataSpec) -> dict[str, Any]:
        return {k: v for k, v in data.to_dict().items() if k not in PER_TRIAL_DATA}

    def updated(self, **sections: Any) -> "Experiment":
        """A copy with these sections replaced, validated again (pydantic's model_copy would not)."""
        try:
            return Experiment.model_validate({**self.model_dump(), **sections})
        except ValidationError as exc:
            raise ValueError(format_errors(exc, f"experiment {self.name}")) from None

    def to_space(self) -> Space:
        return Space.cached(self.space, self.width_rule)  # validated once per process (called per sample)

    def to_data(self) -> DataSpec:
        """The data section; each trial replaces clip length, sampling rate and crop with its
        architecture's (trainers.trial.align), so here the crop is the space's smallest."""
        return self.data.replace(crop=self.to_space().crops()[0])


def _choices(axis: str, value: Any) -> list[Any]:
    """A scalar is one fixed choice; a list is the choices (blocks: a list of 4 ints is one value)."""
    if axis == "blocks" and isinstance(value, list) and value and all(isinstance(x, int) for x in value):
        return [value]
    if isinstance(value, list):
        if not value:
            raise ValueError(f"axis {axis!r} has an empty list of choices")
        return value
    return [value]


# An experiment file has hundreds of values; aliases (`*name`) that expand past this many are refused
# before anything walks the expansion (a 300-byte "billion laughs" file expands to 10^9 strings)
MAX_YAML_VALUES = 100_000


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with two YAML 1.2 habits users expect: `1e-3` is a float (YAML 1.1 wants
    `1.0e-3`) and a key given twice in one mapping is an error (PyYAML keeps the last silently).
    A document whose aliases expand to more than MAX_YAML_VALUES values is refused (see below)."""

    def construct_document(self, node):
        _refuse_alias_bombs(node)
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key] + 1}; a key may appear once "
                    "per mapping: merge the two)",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _refuse_alias_bombs(root: yaml.Node) -> None:
    """Count the values the composed document stands for with every alias expanded (each node's
    count is computed once: time and memory linear in the file), and refuse it past MAX_YAML_VALUES,
    naming the first node that crosses the limit. PyYAML shares an anchored object between its
    aliases, but validation, merges (`<<`) and error messages walk the expansion."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a node that contains itself (`&a [*a]`) counts once
        if isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            n = 1
        if n > MAX_YAML_VALUES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"its aliases expand to more than {MAX_YAML_VALUES:,} values (an alias bomb?); an "
                "experiment file needs a few hundred: write the values out or alias less",
                node.start_mark,
            )
        sizes[id(node)] = n
        return n

    size(root)


_Loader.add_implicit_resolver(  # YAML 1.2's float, e.g. 1e-3, 5E+2, .5
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str):
    """One YAML document → Python objects, with the loader above; errors name `source`."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        raise ValueError(f"{where}: not valid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ValueError(f"{source}: not valid YAML: nested deeper than the parser can follow") from None


def read_yaml(path: Path):
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r}); "
            "an experiment file is YAML text"
        ) from None
    return parse_yaml(text, str(path))


def load_experiment(source: str | Path, *, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read an experiment YAML file or a preset name, apply CLI overrides, validate."""
    path = resolve_source(source)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ValueError(
            f"{path}: an experiment file must be a mapping of sections (name:, space:, data:, …), "
            f"got {type(raw).__name__}"
        )
    for key, value in (overrides or {}).items():
        section, _, field = key.partition(".")
        if field:
            raw.setdefault(section, {})
            if not isinstance(raw[section], dict):
                raise ValueError(f"{path}: {section} must be a mapping to override {key}")
            raw[section] = {**raw[section], field: value}
        else:
            raw[key] = value
    try:
        return Experiment.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(format_errors(exc, str(path))) from None


def resolve_source(source: str | Path) -> Path:
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"experiment file {str(path)!r} does not exist")
        return path
    preset = PRESET_DIR / f"{source}.yaml"
    if preset.is_file():
        return preset
    raise FileNotFoundError(
        f"{str(source)!r} is neither an experiment file nor a preset; presets: {', '.join(list_presets())}"
    )


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
