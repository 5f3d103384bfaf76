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
