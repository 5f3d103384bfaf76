"""Every `svar` subcommand speaks to people: a missing input, a malformed value or an output
that cannot be written gives one line naming the file, option or value (exit status 2), no
traceback; `--debug` shows the traceback."""

import argparse
import json

import pytest
import torch

from svar.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_manifest):
    """A file standing where a folder would be, a file that is not what it claims, a manifest."""
    root = tmp_path_factory.mktemp("cli")
    (root / "afile").write_text("not a folder\n")
    (root / "garbage.pt").write_bytes(b"\x00\x01 not a torch file")
    (root / "bad.json").write_text(json.dumps({"dataset": "s", "method": "m", "fraction": 1, "seed": 0,
                                               "top1": 87.5, "top5": 1, "mean_class": 1}))
    (root / "bad.yaml").write_text("train: [unclosed\n")
    (root / "UCF101TrainTestSplits-RecognitionTask.zip").write_bytes(b"not the official zip")
    torch.save({"a": 1}, root / "notastore.pt")
    return {"root": root, "under": str(root / "afile" / "out"), "manifest": str(tiny_manifest[1] / "manifest.csv"),
            "classes": str(tiny_manifest[1] / "classes.csv")}


# the options of a clip cache's test part (svar.clips.cache_parts.cache_reads)
CACHE_OPTIONS = {"student": {"sampling": "segments", "frames": 4, "cache_frames": 4, "cache_size": [16, 16]},
                 "dataset": {"split": 1}, "evaluate": {"clips": 1}}


def cases(f):
    """(subcommand, the three failures): [missing input], [malformed value], [output under a file]."""
    r, m, under = f["root"], f["manifest"], f["under"]
    missing = str(r / "missing.csv")
    train = ["--split", missing, "--teacher", missing, "--method", "supervised", "--seed", "0", "--dataset", "d",
             "--fraction", "1"]
    return {
        "download": (["--archive", "UCF101TrainTestSplits-RecognitionTask.zip", "--archives-dir", str(r)],
                     ["--archive", "nope.zip"],
                     ["--archive", "UCF101.rar", "--out-dir", under]),
        "dataset": (["--name", "ucf101", "--archives", missing, missing, "--out", str(r / "ds")],
                    ["--classes", "102", "--out", str(r / "ds")],
                    ["--out", under]),
        "pretrain-teacher": (["--pool", str(r / "nopool"), "--out", str(r / "t.pt")],
                             ["--pool", str(r), "--out", str(r / "t.pt"), "--steps", "many"],
                             ["--pool", str(r), "--out", under]),
        "index": (["--root", str(r / "nodata"), "--manifest", str(r / "m.csv"), "--exclusions", str(r / "e.csv"),
                   "--classes", str(r / "c.csv")],
                  ["--root", str(r), "--manifest", str(r / "m.csv"), "--exclusions", str(r / "e.csv"),
                   "--classes", str(r / "c.csv"), "--workers", "two"],
                  ["--root", str(r), "--manifest", under, "--exclusions", str(r / "e.csv"), "--classes", str(r / "c.csv")]),
        "splits": (["--manifest", missing, "--fraction", "0.5", "--seed", "0", "--out", str(r / "s.csv")],
                   ["--manifest", m, "--fraction", "1.5", "--seed", "0", "--out", str(r / "s.csv")],
                   ["--manifest", m, "--fraction", "0.5", "--seed", "0", "--out", under]),
        "teacher-weights": (["--model", "svar-tiny-clip", "--pretrained", str(r / "missing.pt"), "--out", str(r / "w.json")],
                            ["--model", "ViT-B-32", "--pretrained", "no_such_tag", "--out", str(r / "w.json")],
                            ["--model", "svar-tiny-clip", "--pretrained", "none", "--out", under]),
        "student-weights": (["--arch", "tiny3d", "--pretrained", "kinetics400", "--weights-dir", str(r / "w"),
                             "--out", str(r / "sw.json")],  # torchvision publishes no such weights
                            ["--arch", "r3d_18", "--pretrained", "kinetics999", "--weights-dir", str(r / "w"),
                             "--out", str(r / "sw.json")],
                            ["--arch", "r3d_18", "--pretrained", "kinetics400", "--weights-dir", str(r / "w"),
                             "--out", under]),
        "teacher": (["--manifest", missing, "--classes", f["classes"], "--model", "svar-tiny-clip", "--pretrained",
                     "none", "--out", str(r / "f.pt")],
                    ["--manifest", m, "--classes", f["classes"], "--model", "svar-tiny-clip", "--pretrained", "none",
                     "--out", str(r / "f.pt"), "--sampling", "dense"],
                    ["--manifest", m, "--classes", f["classes"], "--model", "svar-tiny-clip", "--pretrained", "none",
                     "--out", under]),
        "teacher-gather": ([missing, "--out", str(r / "g.pt")],
                           [str(r / "garbage.pt"), "--out", str(r / "g.pt")],
                           [str(r / "garbage.pt"), "--out", under]),
        "clip-cache": (["--manifest", missing, "--part", "train", "--options", "{}", "--out", str(r / "c.npy")],
                       ["--manifest", m, "--part", "train", "--options", "{not json", "--out", str(r / "c.npy")],
                       ["--manifest", m, "--part", "test", "--options", json.dumps(CACHE_OPTIONS), "--out", under]),
        "clip-cache-gather": ([missing, "--out", str(r / "c.json")],
                              [str(r / "garbage.pt"), "--out", str(r / "c.json")],
                              [str(r / "garbage.pt"), "--out", under]),
        "train": (["--manifest", missing, "--options", "{}", "--out", str(r / "m.pt"), *train],
                  ["--manifest", m, "--options", "{not json", "--out", str(r / "m.pt"), *train],
                  ["--manifest", m, "--options", "{}", "--out", under, *train]),
        "evaluate": (["--model", missing, "--split", missing, "--out", str(r / "e.json"), "--manifest", m,
                      "--teacher", str(r / "notastore.pt")],
                     ["--model", missing, "--split", missing, "--out", str(r / "e.json"), "--manifest", m,
                      "--teacher", missing, "--clips", "0"],
                     ["--model", missing, "--split", missing, "--out", under, "--manifest", m, "--teacher", missing]),
        "aggregate": ([missing, "--metrics-out", str(r / "a.csv"), "--summary-out", str(r / "b.csv")],
                      [str(r / "bad.json"), "--metrics-out", str(r / "a.csv"), "--summary-out", str(r / "b.csv")],
                      [str(r / "bad.json"), "--metrics-out", under, "--summary-out", str(r / "b.csv")]),
        "report": (["--metrics", missing, "--runs", missing, "--out-dir", str(r / "rep")],
                   ["--metrics", str(r / "garbage.pt"), "--runs", missing, "--out-dir", str(r / "rep")],
                   ["--metrics", missing, "--runs", missing, "--out-dir", under]),
        "config": ([missing], [str(r / "bad.yaml")], None),
        "fetch-weights": (["--configfile", missing], ["--list", "--configfile", str(r / "bad.yaml")], None),
        "plan": (["--rates", missing], ["--configfile", str(r / "bad.yaml")], ["--out", under]),
        "bench": (["train", "--configfile", missing], ["train", "--configfile", str(r / "bad.yaml")], None),
        "probe": ([missing], ["--workers", "x", missing], None),
        "verify": ([str(r / "noresults")], ["--configfile", str(r / "bad.yaml")], None),
        "sweep": (["--config", missing, "--method", "supervised", "--fraction", "0.5"],
                  ["--method", "supervised", "--fraction", "0.5", "--set", "train.lr"], None),
    }


def test_every_subcommand_is_covered(files):
    from svar.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(cases(files)) == set(sub.choices)


@pytest.mark.parametrize("kind", [0, 1, 2], ids=["missing input", "malformed value", "output under a file"])
@pytest.mark.parametrize("command", ["download", "dataset", "pretrain-teacher", "index", "splits", "teacher-weights",
                                     "student-weights", "teacher", "teacher-gather", "train", "evaluate", "aggregate", "report",
                                     "config", "fetch-weights", "bench", "probe", "sweep", "verify"])
def test_a_bad_call_is_one_line_without_a_traceback(files, capsys, command, kind):
    argv = cases(files)[command][kind]
    if argv is None:
        pytest.skip(f"svar {command} writes no file")
    if command == "probe" and kind == 0:  # probe reports an unreadable path as a failed row, exit 0
        assert main_exit([command, *argv]) == 0
        assert "missing.csv" in capsys.readouterr().out
        return
    assert main_exit([command, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err, err
    # ours: "svar <command>: error: ..." (a config with several bad keys lists them below it);
    # argparse's, for a malformed option: its usage, then "svar <command>: error: ..."
    lines = err.splitlines()
    assert lines[0].startswith(f"svar {command}: error: ") or lines[-1].startswith(f"svar {command}: error: "), err


def main_exit(argv) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def test_the_error_names_the_file_or_option(files, capsys):
    m, r = files["manifest"], files["root"]
    main_exit(["splits", "--manifest", str(r / "missing.csv"), "--fraction", "0.5", "--seed", "0", "--out",
               str(r / "s.csv")])
    assert f"{r / 'missing.csv'}: no such manifest; rule index makes it" in capsys.readouterr().err
    main_exit(["train", "--manifest", m, "--options", "{not json", "--out", str(r / "m.pt"), "--split", m,
               "--teacher", m, "--method", "supervised", "--seed", "0", "--dataset", "d", "--fraction", "1"])
    assert "--options: not valid JSON" in capsys.readouterr().err
    main_exit(["splits", "--manifest", m, "--fraction", "0.5", "--seed", "0", "--out", files["under"]])
    assert f"{r / 'afile'} is a file, not a folder" in capsys.readouterr().err
    main_exit(["train", "--manifest", m, "--options", "{}", "--out", str(r), "--split", m, "--teacher", m,
               "--method", "supervised", "--seed", "0", "--dataset", "d", "--fraction", "1"])
    assert f"{r} is a folder; give a file name for the output" in capsys.readouterr().err
    main_exit(["teacher-gather", str(r / "garbage.pt"), "--out", str(r / "g.pt")])
    err = capsys.readouterr().err
    assert f"{r / 'garbage.pt'}: cannot be read as the teacher shard: it is corrupt or truncated" in err
    assert "rule teacher_shard makes it" in err


def test_debug_shows_the_traceback(files):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "splits", "--manifest", str(files["root"] / "missing.csv"), "--fraction", "0.5", "--seed",
              "0", "--out", str(files["root"] / "s.csv")])


def test_building_the_parser_imports_no_heavy_library():
    """Every Snakemake job starts a `python -m svar`: the parser lists registries' names lazily
    (metavar given, so argparse never iterates them), so that a job that needs neither torch nor
    pandas (splits, aggregate, report, plan) does not pay their import (~3 s on this CPU) for
    the parser of the others. A subcommand's own module imports what it uses."""
    import subprocess
    import sys

    code = ("import sys; from svar.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'torchvision', 'pandas', 'scipy', 'matplotlib', 'open_clip') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_a_lazily_listed_choice_is_still_checked(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--method", "mixmatch"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "mixmatch" in err and "distill_pl" in err  # the registered names, listed when one is wrong


def test_every_subcommand_prints_its_help(capsys):
    """Help text comes partly from the config schema's descriptions; argparse %-formats it, so a
    literal % there once made `svar splits --help` crash."""
    from svar.cli import build_parser

    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in subcommands:
        with pytest.raises(SystemExit) as stopped:
            main([name, "--help"])
        assert stopped.value.code == 0, name
        assert f"usage: svar {name}" in capsys.readouterr().out, name
