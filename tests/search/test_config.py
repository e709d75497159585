import pytest

from search.cli import main
from search.config import Resources, list_presets, load_experiment

PRESETS = [
    "res3d-sampling-rate",
    "res3d-resolution",
    "res3d-conv-mixture",
    "res3d-depth",
    "r2plus1d-convs",
    "r2plus1d-clip-length",
    "p3d-blocks",
    "joint",
    "demo",
    "fidelity",
]


def test_every_paper_sweep_is_a_preset():
    assert set(PRESETS) <= set(list_presets())


@pytest.mark.parametrize("name", PRESETS)
def test_presets_validate_and_dry_run(name, capsys):
    exp = load_experiment(name, overrides={"data.root": "/data/ucf101"})
    assert exp.to_space().size >= 3
    # the presets ask for GPUs: --address (a GPU cluster) skips the check of the local machine
    assert main(["search", name, "--address", "auto", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "infeasible:" not in out or name == "joint"


def test_dry_run_reproduces_the_papers_widths(capsys):
    main(["search", "res3d-conv-mixture", "--address", "auto", "--dry-run"])
    widths = [
        int(line.split()[2])
        for line in capsys.readouterr().out.splitlines()
        if line.split()[1:2] == ["mc1"] or (len(line.split()) > 2 and line.split()[1] in ("mc2", "mc3", "mc4", "mc5"))
    ]
    assert widths == [109, 109, 108, 103, 90]


def write(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


MINIMAL = "name: x\nspace: {network: sr18}\ndata: {format: ucf101, root: /d}\n"


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("serch: {algorithm: grid}\n", "serch: unknown key (typo?)"),
        (
            "search: {algorithm: bayes}\n",
            "search.algorithm: Input should be 'grid', 'random', 'tpe', 'nsga2' or 'expand' (got 'bayes')",
        ),
        ("search: {num_samples: lots}\n", "search.num_samples: Input should be a valid integer"),
        ("search: {metric: top1}\n", "search.metric: metric 'top1' is not reported; valid: video@1"),
        ("resources: {gpus_per_trial: -1}\n", "resources.gpus_per_trial: Input should be greater than or equal to 0"),
        ("scheduler: {type: pbt}\n", "scheduler.type: Input should be 'fifo', 'asha', 'hyperband' or 'moasha'"),
        ("schedule: {lr: fast}\n", "exp.yaml: schedule.lr: Input should be a valid number (got 'fast')"),
        (
            "data: {format: ucf101, root: /d, missing_videos: ignore}\n",
            "exp.yaml: data.missing_videos: Input should be 'error' or 'skip' (got 'ignore')",
        ),
        (
            "data: {format: ucf101, root: /d, decoder: ffmpeg}\n",
            "exp.yaml: data.decoder: must be one of ['decord', 'torchcodec', 'pyav'], got 'ffmpeg'",
        ),
        ("constraints: {max_gflops: 0}\n", "constraints.max_gflops: Input should be greater than 0"),
        ("search: {algorithm: tpe, repeats: 3}\n", "search: repeats = 3 needs algorithm 'grid'"),
    ],
)
def test_config_errors_name_the_field_the_value_and_what_is_valid(tmp_path, extra, expected):
    base = "\n".join(l for l in MINIMAL.splitlines() if l.split(":")[0] != extra.split(":")[0]) + "\n"
    with pytest.raises(ValueError) as err:
        load_experiment(write(tmp_path, base + extra))
    assert expected in str(err.value) and "exp.yaml" in str(err.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: x\nspace: {network: mc6}\ndata: {format: ucf101, root: /d}\n", "unknown network 'mc6'"),
        ("name: x\nspace: {network: sr18, colour: red}\ndata: {format: ucf101, root: /d}\n", "unknown axis ['colour']"),
        (
            "name: x\nspace: {network: sr18, width: 0}\ndata: {format: ucf101, root: /d}\n",
            "exp.yaml: space: ArchSpec: width: Input should be greater than or equal to 1 (got 0)",
        ),
        ("name: x\nspace: {network: sr18}\ndata: {format: youtube, root: /d}\n", "format"),
        ("name: x\nspace: {network: sr18}\n", "data: Field required"),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
        ("name: 'bad name'\nspace: {network: sr18}\ndata: {format: ucf101, root: /d}\n", "name: String should match"),
    ],
)
def test_bad_files(tmp_path, text, expected):
    with pytest.raises(ValueError, match=None) as err:
        load_experiment(write(tmp_path, text))
    assert expected in str(err.value)


def test_cli_prints_one_line_errors(tmp_path, capsys):
    assert main(["search", str(write(tmp_path, MINIMAL + "serch: {}\n")), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "serch: unknown key" in err and "Traceback" not in err
    assert main(["search", "no-such-preset"]) == 2
    assert "neither an experiment file nor a preset" in capsys.readouterr().err
    assert main(["search", "res3d-depth", "--set", "oops"]) == 2


def test_running_a_preset_without_data_is_a_clear_error(capsys):
    from search.run import driver_indexes

    with pytest.raises(ValueError, match="pass --data FORMAT:ROOT"):
        driver_indexes(load_experiment("res3d-depth"))


def test_overrides_from_the_command_line(tmp_path):
    exp = load_experiment(write(tmp_path, MINIMAL), overrides={"search.algorithm": "tpe", "name": "y"})
    assert (exp.search.algorithm, exp.name) == ("tpe", "y")


def test_a_broken_experiment_file_of_a_run_names_the_file(tmp_path):
    from search.tuner import read_experiment

    (tmp_path / "starch_experiment.json").write_text('{"name": ')  # cut short by a full disk
    with pytest.raises(ValueError, match=r"starch_experiment.json is not valid JSON .* trials' folders are intact"):
        read_experiment(tmp_path)
    (tmp_path / "starch_experiment.json").write_text('{"name": "x"}')
    with pytest.raises(ValueError, match=r"starch_experiment.json: data: Field required"):
        read_experiment(tmp_path)


def test_sections_are_the_trainers_typed_specs_validated_once(tmp_path):
    from trainers.data.datasets import DataSpec
    from trainers.recipe import Recipe

    exp = load_experiment(write(tmp_path, MINIMAL + "schedule: {epochs: 3}\nsearch: {seed: 7}\n"))
    assert isinstance(exp.schedule, Recipe) and isinstance(exp.data, DataSpec)
    assert (exp.schedule.epochs, exp.schedule.seed) == (3, 7)  # the searcher's seed is the recipe's
    given = load_experiment(write(tmp_path, MINIMAL + "schedule: {seed: 2}\nsearch: {seed: 7}\n"))
    assert given.schedule.seed == 2
    assert exp.to_data().crop == 112  # the space's crop (sr18's own), not the stand-in
    # what a run folder records reads back to the same experiment
    from search.config import Experiment

    assert Experiment.model_validate(exp.model_dump(mode="json")) == exp
    assert "crop" not in exp.model_dump()["data"]


@pytest.mark.parametrize("key, axis", [("crop", "space.crop"), ("clip_len", "space.frames")])
def test_the_architectures_clip_fields_are_refused_in_data(tmp_path, key, axis):
    text = MINIMAL.replace("root: /d}", f"root: /d, {key}: 16}}")
    with pytest.raises(ValueError, match=rf"exp.yaml: data.{key}: each trial takes it from its architecture \({axis}"):
        load_experiment(write(tmp_path, text))


def test_updated_validates_again(tmp_path):
    exp = load_experiment(write(tmp_path, MINIMAL))
    assert exp.updated(space={**exp.space, "num_classes": [8]}).to_space().axes["num_classes"] == (8,)
    with pytest.raises(ValueError, match="resources.cpus_per_trial: Input should be greater than 0"):
        exp.updated(resources={**exp.resources.model_dump(), "cpus_per_trial": 0})


def test_ray_adapter_resources_use_the_experiments_types():
    from trainers.resources import WorkerResources

    with pytest.raises(ValueError, match=r"workers_per_trial: Input should be greater than or equal to 1 \(got 0\)"):
        WorkerResources.of(workers_per_trial=0)
    with pytest.raises(ValueError, match="workers_per_trial: Input should be a valid integer"):
        WorkerResources.of(workers_per_trial=True)
    with pytest.raises(ValueError, match="gpus_per_worker = 0.5 needs use_gpu=True"):
        WorkerResources.of(gpus_per_worker=0.5)
    assert WorkerResources.of(use_gpu=True).gpus == 1.0


def test_an_older_run_folder_with_clip_fields_in_data_still_reads(tmp_path):
    """Runs written before the experiment refused data.crop/clip_len (the architecture always set them)."""
    import json

    from search.tuner import read_experiment

    exp = load_experiment(write(tmp_path, MINIMAL))
    old = exp.model_dump(mode="json")
    old["data"] = {**old["data"], "clip_len": 16, "crop": 112}
    (tmp_path / "starch_experiment.json").write_text(json.dumps(old))
    assert read_experiment(tmp_path) == exp


def test_an_error_wrapping_a_traceback_prints_the_exception_it_ends_with():
    from search.cli import one_line

    wrapped = RuntimeError("Traceback (most recent call last):\n  File \"x.py\", line 1, in f\nKeyError: 'epoch'\n")
    assert one_line(wrapped) == "KeyError: 'epoch'"
    assert one_line(ValueError("first line\nsecond")) == "first line" and one_line(ValueError()) == ""


def test_gpus_a_process_cannot_use_are_refused():
    from trainers.resources import WorkerResources

    with pytest.raises(
        ValueError, match=r"gpus_per_trial = 2: each training process uses one GPU.*workers_per_trial: 2"
    ):
        Resources(gpus_per_trial=2)
    with pytest.raises(ValueError, match="gpus_per_trial = 1.5: each training process uses one GPU"):
        Resources(gpus_per_trial=1.5, workers_per_trial=2)
    assert Resources(gpus_per_trial=1, workers_per_trial=2).gpus_per_trial == 1
    with pytest.raises(ValueError, match="gpus_per_worker = 0.5 with workers_per_trial = 2: .*NCCL"):
        WorkerResources.of(workers_per_trial=2, use_gpu=True, gpus_per_worker=0.5)
    with pytest.raises(ValueError, match="gpus_per_worker = 2: each worker process uses one GPU"):
        WorkerResources.of(use_gpu=True, gpus_per_worker=2)
    assert WorkerResources.of(use_gpu=True, gpus_per_worker=0.5).gpus == 0.5  # one process may share a GPU


def _alias_bomb(levels: int) -> str:
    """The 'billion laughs' in YAML: each level's anchor is a list of nine aliases of the one before,
    so `levels` lines stand for 9**levels strings."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nname: *l{levels - 1}\n"


def test_a_yaml_alias_bomb_is_refused_while_parsing_with_bounded_memory():
    """Issue 27: 9**9 (387 million) strings in 600 bytes; the old loader returned them (shared) and the
    validation error then repr()'d the expansion (53 s, 5.5 GB for a 741-byte file)."""
    import tracemalloc

    from search.config import MAX_YAML_VALUES, parse_yaml

    text = _alias_bomb(9)
    assert len(text) < 1000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"bomb.yaml:\d+:\d+: not valid YAML: its aliases expand to more than"):
            parse_yaml(text, "bomb.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20
    # a file of many values that are not aliased is not a bomb
    many = "name: x\nvalues: [" + ",".join(["1"] * (MAX_YAML_VALUES // 2)) + "]\n"
    assert len(parse_yaml(many, "many.yaml")["values"]) == MAX_YAML_VALUES // 2


def test_the_cli_refuses_an_alias_bomb_in_one_short_line(tmp_path, capsys):
    # 9**7 strings: the old error message was the 30-MB repr() of all of them
    assert main(["search", str(write(tmp_path, _alias_bomb(7))), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "alias bomb" in err and len(err) < 400 and err.count("\n") == 1


def test_a_validation_error_shows_a_bounded_repr_of_a_huge_value():
    from pydantic import ValidationError

    from search.config import Experiment, format_errors

    huge = [[str(i)] * 1000 for i in range(1000)]
    with pytest.raises(ValidationError) as exc:
        Experiment.model_validate(
            {"name": huge, "space": {"network": "sr18"}, "data": {"format": "ucf101", "root": "/d"}}
        )
    text = format_errors(exc.value, "x.yaml")
    assert text.startswith("x.yaml: name: Input should be a valid string (got [['0', '0',") and len(text) < 300
