"""Every input is checked before a job trusts it, and every error names its cause (issue #26's
red-team cases): a metrics.json that disagrees with its own predictions or is given twice, a
split table cut short, `--options` missing keys or of the wrong type, a teacher's weights file
that is not there, settings beyond the data."""

from __future__ import annotations

import json
import shutil

import pytest

from svar.cli import main


def run_cli(argv, capsys) -> tuple[int, str]:
    """svar's exit status and stderr for argv (0 when it returns)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------- aggregate


@pytest.fixture(scope="module")
def scored_run(tiny_manifest, tiny_store, tmp_path_factory):
    """A run scored by svar evaluate (the teacher's zero-shot head on the tiny set): its
    metrics.json, with its test predictions."""
    from svar.evaluate import evaluate
    from svar.splits import make_split
    from svar.trainer import train

    manifest, _ = tiny_manifest
    folder = tmp_path_factory.mktemp("scored")
    split = make_split(manifest, 0.5, 0)
    train(manifest, split, tiny_store, "clip_zeroshot", {}, folder / "model.pt", 0,
          {"dataset": "synthetic", "fraction": 0.5})
    evaluate(folder / "model.pt", manifest, split, tiny_store, folder / "metrics.json")
    return folder / "metrics.json"


def aggregate_args(tmp_path, *files) -> list[str]:
    return ["aggregate", *map(str, files), "--metrics-out", str(tmp_path / "metrics.csv"),
            "--summary-out", str(tmp_path / "summary.csv")]


def test_aggregate_takes_a_run_as_evaluate_wrote_it(scored_run, tmp_path, capsys):
    assert run_cli(aggregate_args(tmp_path, scored_run), capsys)[0] == 0
    assert (tmp_path / "metrics.csv").exists()


@pytest.mark.parametrize("metric", ["top1", "mean_class"])
def test_aggregate_refuses_metrics_that_disagree_with_their_predictions(scored_run, tmp_path, capsys, metric):
    """Red-team: top1 hand-edited to 0.99 where its predictions give another value was aggregated."""
    run = json.loads(scored_run.read_text())
    truth = run[metric]
    assert truth != 0.99
    edited = tmp_path / "metrics.json"
    edited.write_text(json.dumps({**run, metric: 0.99}))
    code, err = run_cli(aggregate_args(tmp_path, edited), capsys)
    assert code == 2 and "Traceback" not in err
    assert f"{edited}: {metric} = 0.99, but its own predictions" in err
    assert f"give {truth:g}" in err and "rule evaluate" in err and "delete it" in err
    assert not (tmp_path / "metrics.csv").exists()


def test_aggregate_refuses_metrics_without_predictions(scored_run, tmp_path, capsys):
    run = json.loads(scored_run.read_text())
    del run["test_predictions"]
    stripped = tmp_path / "metrics.json"
    stripped.write_text(json.dumps(run))
    code, err = run_cli(aggregate_args(tmp_path, stripped), capsys)
    assert code == 2 and f"{stripped}: holds no test predictions" in err


def test_aggregate_refuses_one_run_twice(scored_run, tmp_path, capsys):
    """Red-team: `svar aggregate M M` reported n_seeds 2, std 0.0; a copy under another path is
    the same run too (its dataset, teacher, method, fraction and seed)."""
    code, err = run_cli(aggregate_args(tmp_path, scored_run, scored_run), capsys)
    assert code == 2 and f"{scored_run}: given twice" in err
    copy = shutil.copy(scored_run, tmp_path / "copy.json")
    code, err = run_cli(aggregate_args(tmp_path, scored_run, copy), capsys)
    assert code == 2 and f"{scored_run} and {copy}: the same run" in err
    assert "method clip_zeroshot, fraction 0.5, seed 0" in err
    assert not (tmp_path / "metrics.csv").exists()


# --------------------------------------------------------------------------- split tables


@pytest.fixture(scope="module")
def split_files(tiny_manifest, tmp_path_factory):
    """A split table and its info as rule splits writes them."""
    from svar.splits import write_split

    manifest, _ = tiny_manifest
    folder = tmp_path_factory.mktemp("splits")
    write_split(manifest, 0.5, 0, folder / "fraction0.5_seed0.csv", info_out=folder / "fraction0.5_seed0.json")
    return folder / "fraction0.5_seed0.csv"


def cut(split_files, tmp_path, size: int):
    """The split table and its info copied to tmp_path, the table cut to `size` bytes."""
    shutil.copy(split_files.with_suffix(".json"), tmp_path / split_files.with_suffix(".json").name)
    out = tmp_path / split_files.name
    out.write_bytes(split_files.read_bytes()[:size])
    return out


@pytest.mark.parametrize("where, reason", [
    ("header", "no rows below its header"),
    ("line", "recorded"),  # whole rows gone: the counts of its json sibling say so
    ("row", "roles ["),  # cut in a row's role
    ("label", "not a whole number"),
])
def test_a_split_table_cut_short_is_refused_naming_the_file(split_files, tmp_path, where, reason):
    from svar.readers import CorruptFileError
    from svar.splits import load_split

    text = split_files.read_text()
    lines = text.splitlines(keepends=True)
    size = {"header": len(lines[0]), "line": len("".join(lines[:-2])),
            "row": len("".join(lines[:-1])) + len(lines[-1]) - 3,
            "label": len("".join(lines[:-1])) + lines[-1].index(",") + 1}[where]
    with pytest.raises(CorruptFileError, match="rule splits makes it: delete") as caught:
        load_split(cut(split_files, tmp_path, size))
    assert str(caught.value).startswith(f"{tmp_path / split_files.name}: ") and reason in str(caught.value)


def test_train_with_a_truncated_split_says_which_file(split_files, tiny_manifest, tmp_path, capsys):
    """Red-team: a truncated split CSV made train jobs fail with `TypeError: can't convert
    np.ndarray of type numpy.object_`."""
    _, index_dir = tiny_manifest
    split = cut(split_files, tmp_path, len(split_files.read_text().splitlines(keepends=True)[0]))
    code, err = run_cli(["train", "--manifest", str(index_dir / "manifest.csv"), "--split", str(split),
                         # the split is read before the teacher's store
                         "--teacher", str(tmp_path / "features.pt"), "--method", "clip_zeroshot", "--options", "{}",
                         "--seed", "0", "--dataset", "synthetic", "--fraction", "0.5",
                         "--out", str(tmp_path / "model.pt")], capsys)
    assert code == 2 and "Traceback" not in err and "TypeError" not in err
    assert f"{split}: cannot be read as the split table" in err and "rule splits" in err


# --------------------------------------------------------------------------- --options


def json_option_commands() -> dict:
    """The subcommands that take JSON config options, from the CLI's parser: those with an
    argument parsed by svar.options_check.json_object, and that argument's flag."""
    import argparse

    from svar.cli import build_parser
    from svar.options_check import json_object

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: (parser, next(a for a in parser._actions if a.type is json_object))
            for name, parser in sub.choices.items() if any(a.type is json_object for a in parser._actions)}


def argv_for(name: str, tmp_path, options: str, **chosen) -> list[str]:
    """A call of subcommand `name` with every required argument given (a choice's first value,
    0 for a number, a path under tmp_path otherwise; `chosen` by dest), its JSON options `options`."""
    parser, option = json_option_commands()[name]
    argv = [name]
    for action in parser._actions:
        if action is option:
            argv += [action.option_strings[0], options]
        elif action.required and action.option_strings:
            value = chosen.get(action.dest)
            if value is None:
                value = (next(iter(action.choices)) if action.choices is not None else
                         "0" if action.type in (int, float) else str(tmp_path / action.dest))
            argv += [action.option_strings[0], str(value)]
    for group in parser._mutually_exclusive_groups:  # one of a required group (--fraction | --shots): the first
        if group.required:
            argv += [group._group_actions[0].option_strings[0], "1"]
    return argv


def test_the_json_options_commands_are_found():
    assert {"train", "clip-cache", "plan"} <= set(json_option_commands())


def named_keys(err: str) -> set[str]:
    return {line.strip().split(":")[0] for line in err.splitlines()[1:] if line.startswith("  ")}


@pytest.mark.parametrize("name", sorted(json_option_commands()))
def test_incomplete_options_name_every_missing_key_and_its_type(name, tmp_path, capsys):
    """Red-team: `svar clip-cache` and `svar train` with incomplete --options said only `error:
    dataset`, `error: train`. Each key the subcommand reads is named, with its type, at once."""
    from svar.options_check import leaf_keys, reads_of

    parser, option = json_option_commands()[name]
    code, err = run_cli(argv_for(name, tmp_path, "{}"), capsys)
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith(f"svar {name}: error: {option.option_strings[0]}: the JSON lacks or mistypes keys")
    args = parser.parse_args(argv_for(name, tmp_path, "{}")[1:])
    _, _, _, reads = args.options_reads(args)
    wanted = {leaf for key in reads_of({}, reads) for leaf in leaf_keys(key)}
    assert named_keys(err) == wanted and len(wanted) > 3
    assert "  dataset.split: missing (integer)" in err or name == "train"


def workflow_configs():
    from svar.config import load_workflow_config
    from conftest import ROOT

    return {path.stem: load_workflow_config(path) for path in (ROOT / "workflow" / "config").glob("*.yaml")
            if path.stem in ("config", "tiny", "full")}


def test_the_options_the_workflow_passes_are_accepted(tmp_path, capsys):
    """What the rules pass (svar.methods.options_for, cache_reads, plan_reads of a config): no
    complaint, for every method and part of the default, tiny and full configs."""
    from svar.clips.cache_parts import PARTS, cache_reads
    from svar.config import subset
    from svar.methods import METHODS
    from svar.trainer import options_for, training_reads
    from svar.options_check import problems
    from svar.plan import plan_reads

    from svar.config import merge, validate

    # and the modes that change which keys a run reads: dense clips (stride), a student source of
    # pseudo-labels (its strong view), a teacher probe (linear_probe), torchvision weights (weights_dir)
    default = workflow_configs()["config"]
    modes = {"student": {"sampling": "dense", "arch": "r3d_18", "pretrained": "kinetics400"},
             "train": {"crop": "random_resized"}, "distill_pl": {"source": "student"},
             "teacher_pl": {"source": "teacher_probe"}}
    variants = [validate(merge(default, modes))]
    for config in [*workflow_configs().values(), *variants]:
        for method in METHODS.names():
            assert problems(options_for(method, config), training_reads(method, config)) == [], method
        for part in PARTS:
            assert problems(subset(config, cache_reads(config, part)), cache_reads(config, part)) == [], part
        assert problems(subset(config, plan_reads(config)), plan_reads(config)) == []


def every_method():
    from svar.methods import METHODS

    return METHODS.names()


@pytest.mark.parametrize("method", every_method())
def test_train_options_of_each_method_missing_or_mistyped(method, tmp_path, capsys):
    """Red-team: `svar train --options '{"distill": 5}'` was a traceback. For each method: its
    options less one key name that key; a section that is no object, or a key of the wrong
    type, is named with its expected type; nothing else is."""
    from svar.config import load_workflow_config
    from svar.methods import METHODS
    from svar.trainer import options_for, training_reads
    from svar.options_check import expected, node_of, leaf_keys

    config = load_workflow_config()
    options = options_for(method, config)
    leaves = [leaf for key in training_reads(method, config) for leaf in leaf_keys(key)]
    if not leaves:  # a teacher-only head reads nothing of the config
        assert run_cli(argv_for("train", tmp_path, "{}", method=method), capsys)[1].find("--options") < 0
        return
    section, key = leaves[-1].split(".", 1)[0], leaves[-1]
    less = json.loads(json.dumps(options))
    node = less
    for part in key.split(".")[:-1]:
        node = node[part]
    del node[key.split(".")[-1]]
    code, err = run_cli(argv_for("train", tmp_path, json.dumps(less), method=method), capsys)
    assert code == 2 and named_keys(err) == {key} and f"  {key}: missing (" in err, err
    code, err = run_cli(argv_for("train", tmp_path, json.dumps({**options, section: 5}), method=method), capsys)
    assert code == 2 and "Traceback" not in err
    assert f"  {section}: 5 is not an object (a config section holding" in err, err
    # each key the method reads whose type is a number, given a word: each named, with its type
    numbers = [leaf for leaf in leaves if expected(node_of(leaf)) in ("number", "integer")]
    wrong = json.loads(json.dumps(options))
    for leaf in numbers:
        node = wrong
        for part in leaf.split(".")[:-1]:
            node = node[part]
        node[leaf.split(".")[-1]] = "fast"
    code, err = run_cli(argv_for("train", tmp_path, json.dumps(wrong), method=method), capsys)
    assert code == 2 and named_keys(err) == set(numbers) and len(numbers) >= 2, err
    assert all(f'  {leaf}: "fast" is not {expected(node_of(leaf))}' in err for leaf in numbers), err


# --------------------------------------------------------------------------- weights files


def tiny_config(**sections):
    """tiny.yaml's config with `sections` overlaid (merged key by key), validated."""
    from svar.config import load_workflow_config, merge, validate
    from conftest import TINY

    return validate(merge(load_workflow_config(TINY), sections))


@pytest.mark.parametrize("kind", ["missing", "folder"])
@pytest.mark.parametrize("key", ["teacher", "teachers[1]"])
def test_a_teacher_weights_file_must_be_a_file_before_any_job(tmp_path, key, kind):
    """Red-team: teacher.pretrained naming a file that does not exist was accepted (exit 0, the
    generated teacher's results); naming a folder ended in open_clip's traceback in both shard jobs."""
    from svar.config import ConfigError
    from svar.config_checks import check

    path = tmp_path / ("nothing.pt" if kind == "missing" else "weights")
    if kind == "folder":
        path.mkdir()
    good = tmp_path / "good.pt"
    good.write_bytes(b"weights")
    if key == "teacher":
        config = tiny_config(teacher={"model": "svar-tiny-clip", "pretrained": str(path)})
    else:
        config = tiny_config(teachers=[{"model": "svar-tiny-clip", "pretrained": str(good), "name": "a"},
                                       {"model": "svar-tiny-clip", "pretrained": str(path), "name": "b"}])
    with pytest.raises(ConfigError) as caught:
        check(config, "overlay.yaml", local=False)
    message = str(caught.value)
    said = "does not exist" if kind == "missing" else "is a folder, not a checkpoint file"
    assert f"  {key}.pretrained: {path} {said}" in message
    assert "teachers[0]" not in message  # the one that exists is fine
    assert "name an existing checkpoint file" in message or "name the weights file in it" in message


def test_an_existing_teacher_weights_file_passes(tmp_path):
    from svar.config_checks import check

    good = tmp_path / "good.pt"
    good.write_bytes(b"weights")
    check(tiny_config(teacher={"model": "svar-tiny-clip", "pretrained": str(good)}), local=False)


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_a_student_weights_file_must_be_a_file(tmp_path, kind):
    from svar.config import ConfigError
    from svar.config_checks import check

    path = tmp_path / "student.pt"
    if kind == "folder":
        path.mkdir()
    with pytest.raises(ConfigError, match=f"student.pretrained: '{path}' is neither none, kinetics400, imagenet nor "
                                          "an existing state-dict file"):
        check(tiny_config(student={"pretrained": str(path)}), local=False)


def test_svar_plan_refuses_a_missing_teacher_weights_file(tmp_path, capsys, monkeypatch):
    """svar plan runs the workflow's config check: no plan for a config whose weights are not there."""
    from conftest import ROOT, TINY

    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(f"teacher: {{model: svar-tiny-clip, pretrained: {tmp_path / 'nothing.pt'}}}\n")
    monkeypatch.chdir(ROOT)
    code, err = run_cli(["plan", "--configfile", str(TINY), str(overlay)], capsys)
    assert code == 2 and f"teacher.pretrained: {tmp_path / 'nothing.pt'} does not exist" in err, err


# --------------------------------------------------------------------------- beyond the data


BEYOND = {"teacher": {"shards": 50}, "clip_cache": {"shards": 30}, "train": {"batch_size": 10000},
          "student": {"cache_frames": 1000}}


def test_settings_beyond_the_data_are_warned_at_the_config_check(caplog):
    """Red-team: 50 teacher shards for 24 videos, batch 10,000, 1,000 cached frames of 40-frame
    videos were accepted without a word."""
    import logging

    from svar.config_checks import check

    with caplog.at_level(logging.WARNING):
        check(tiny_config(**BEYOND), local=False)
    said = caplog.text
    assert "teacher.shards: 50 shards for 24 videos to encode: 26 of the shard jobs get no video" in said
    assert "clip_cache.shards: 30 shards for 16 videos in the cache's train part" in said
    assert "clip_cache.shards: 30 shards for 8 videos in the cache's test part" in said
    assert "train.batch_size: 10000 clips a batch, but only 16 videos outside the test list" in said
    assert "student.cache_frames: 1000 frames cached a video, but the longest video has 40" in said


def test_the_warnings_count_from_the_manifest_when_there_is_one(tiny_manifest):
    from svar.input_checks import data_warnings

    manifest, index_dir = tiny_manifest
    lines = data_warnings(tiny_config(**BEYOND), index_dir / "manifest.csv")
    assert f"teacher.shards: 50 shards for {len(manifest)} videos" in lines[0]
    assert all(f"its manifest ({index_dir / 'manifest.csv'})" in line for line in lines) and len(lines) == 5
    assert f"the longest video has {manifest['frames'].max()}" in lines[-1]


def test_the_shipped_configs_are_within_their_data():
    from svar.input_checks import data_warnings

    for name, config in workflow_configs().items():
        assert data_warnings(config) == [], name


def test_the_jobs_say_so_in_their_logs(tiny_manifest, caplog):
    """The jobs warn from what they read: a teacher or clip-cache shard job with more shards than
    videos, a train job whose batch is larger than its split's labeled videos."""
    import logging

    from svar.config import subset
    from svar.clips.cache_parts import cache_reads
    from svar.input_checks import clip_cache_job_warnings, teacher_job_warnings, train_job_warnings
    from svar.trainer import options_for
    from svar.splits import make_split

    manifest, _ = tiny_manifest
    config = tiny_config(**BEYOND)
    split = make_split(manifest, 0.5, 0)
    labeled = int((split["role"] == "labeled").sum())
    with caplog.at_level(logging.WARNING):
        teacher_job_warnings(50, manifest)
        clip_cache_job_warnings(subset(config, cache_reads(config, "test")), "test", 30, manifest)
        train_job_warnings(options_for("supervised", config), split, manifest)
        teacher_job_warnings(None, manifest)  # one store, no shards
    said = caplog.text
    assert f"teacher.shards: 50 shards for {len(manifest)} videos to encode" in said
    assert "clip_cache.shards: 30 shards for 8 videos in the cache's test part" in said
    assert "student.cache_frames: 1000 frames cached a video, but the test part's longest video has" in said
    assert f"train.batch_size: 10000 clips a batch, but only {labeled} videos labeled in this run's split" in said
    assert len(caplog.records) == 5


@pytest.mark.parametrize("convention", ["svformer", "videossl"])
def test_a_lists_dir_without_a_fraction_of_the_grid_is_refused_at_the_config_check(tmp_path, convention):
    """Red-team: a lists_dir without the grid's fraction was found only when rule splits ran."""
    from svar.config import ConfigError
    from svar.config_checks import check

    lists = tmp_path / "lists"
    if convention == "svformer":
        (lists / "list_synthetic_25").mkdir(parents=True)
        for name in ("train.csv", "unlabel.csv", "test.csv"):
            (lists / "list_synthetic_25" / name).write_text("")
        missing = lists / "list_synthetic_50" / "train.csv"
    else:
        lists.mkdir()
        for name in ("synthetic_train_25_percent_labeled_split_1_rawframes.txt", "synthetic_val_split_1_rawframes.txt"):
            (lists / name).write_text("")
        missing = lists / "synthetic_train_50_percent_labeled_split_1_rawframes.txt"
    config = tiny_config(dataset={"split_convention": convention, "lists_dir": str(lists)}, fractions=[0.25, 0.5])
    with pytest.raises(ConfigError) as caught:
        check(config, local=False)
    assert (f"dataset.lists_dir: no {convention} list for fraction 0.5 of the grid: {missing} does not exist"
            in str(caught.value))
    assert "fraction 0.25" not in str(caught.value)
    check(tiny_config(dataset={"split_convention": convention, "lists_dir": str(lists)}, fractions=[0.25]),
          local=False)


def test_a_bare_missing_key_is_said_as_one():
    """Red-team: `svar teacher-gather` of a file without the key said only `error: manifest_ids`
    (a dict lookup's KeyError); a KeyError with a message of its own is said as it is."""
    from svar.cli import describe

    assert describe(KeyError("manifest_ids")).startswith("'manifest_ids' is missing from an input this command read")
    assert describe(KeyError("train.lr: not in the configuration")) == "train.lr: not in the configuration"


@pytest.mark.slow
def test_a_complete_run_with_missing_or_folder_teacher_weights_stops_before_any_job(tiny_run, tmp_path):
    """Red-team, on a complete run: teacher.pretrained naming a missing file scheduled nothing
    and exited 0 with the generated teacher's results (Snakemake takes an existing output as up
    to date when the job that makes it lacks an input no rule makes); a folder ended in
    open_clip's traceback in both shard jobs. Both now stop at the config check, naming the key."""
    from conftest import TINY, snakemake_side_by_side

    workdir = tiny_run[0]
    folder = tmp_path / "weights"
    folder.mkdir()
    runs = {}
    for kind, path in (("missing", tmp_path / "nothing.pt"), ("folder", folder)):
        overlay = tmp_path / f"{kind}.yaml"
        overlay.write_text(f"teacher: {{pretrained: {path}}}\n")
        runs[kind] = (workdir, "-n", "--cores", "1", "--configfile", str(TINY), str(overlay))
    results = snakemake_side_by_side(runs)
    for kind, said in (("missing", f"{tmp_path / 'nothing.pt'} does not exist"),
                       ("folder", f"{folder} is a folder, not a checkpoint file")):
        out = results[kind].stdout + results[kind].stderr
        assert results[kind].returncode != 0 and f"teacher.pretrained: {said}" in out, out[-2000:]
