"""Your own videos (`dataset.root`): a folder in UCF101's layout or a CSV, laid out as data/<name>
with links and read by the index as its source; every mistake named by key, file and line; and a
tiny benchmark on a root folder run end to end."""

import csv
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from svar import config as cfg
from svar import config_checks
from svar.datasets import dataset_folder
from svar.datasets.user import UserDatasetError, lay_out, read_video_csv
from svar.manifest import build_manifest, files_digest, index_inputs, read_class_index, read_split_list

CONFIGS = ROOT / "workflow" / "config"


def copy_dataset(src: Path, dest: Path) -> Path:
    """A dataset's videos/ and splits/ as a user's own folder: real files, no pretrain pool."""
    for part in ("videos", "splits"):
        shutil.copytree(src / part, dest / part, symlinks=False)
    return dest


def write_csv(folder: Path, out: Path) -> Path:
    """A CSV root listing a folder's split 1: train videos by relative path, test ones absolute."""
    rows = [("path", "label", "split")]
    for role in ("train", "test"):
        for rel in read_split_list(folder / "splits" / f"{role}list01.txt"):
            path = folder / "videos" / rel
            rows.append((os.path.relpath(path, out.parent) if role == "train" else str(path), rel.split("/")[0], role))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return out


def roles(frame: pd.DataFrame) -> set:
    """What the index read, whatever the folders and label numbers: (video, class, split 1 role)."""
    return set(frame[["video_id", "class_name", "split1"]].itertuples(index=False, name=None))


def index_of(root: Path) -> pd.DataFrame:
    return build_manifest(root / "videos", root / "splits")


@pytest.fixture
def mydata(tiny_dataset, tmp_path) -> Path:
    return copy_dataset(tiny_dataset, tmp_path / "mydata")


# ---------------------------------------------------------------- laying out


def test_a_folder_root_is_linked_and_indexes_as_its_source(mydata, tmp_path):
    out = lay_out(mydata, tmp_path / "data" / "mine")
    for part in ("videos", "splits"):
        link = out / part
        assert link.is_symlink() and os.path.isabs(os.readlink(link)) and link.resolve() == (mydata / part).resolve()
    assert (out / "root.txt").read_text().strip() == str(mydata)
    assert roles(index_of(out)) == roles(index_of(mydata))
    # the index's params digest the user's files through the links: an edit there reruns it
    before = files_digest(index_inputs(out))
    lines = (mydata / "splits" / "testlist01.txt").read_text().splitlines()
    (mydata / "splits" / "testlist01.txt").write_text("\n".join(lines[1:]) + "\n")
    edited = files_digest(index_inputs(out))
    video = mydata / "videos" / lines[2]
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))
    assert len({before, edited, files_digest(index_inputs(out))}) == 3


def test_a_csv_root_becomes_ucf101s_layout_and_indexes_as_its_source(mydata, tmp_path):
    listed = write_csv(mydata, tmp_path / "lists" / "videos.csv")
    out = lay_out(listed, tmp_path / "data" / "mine")
    classes = read_class_index(out / "splits" / "classInd.txt")
    assert classes == sorted(read_class_index(mydata / "splits" / "classInd.txt"))
    assert sorted(p.name for p in (out / "splits").iterdir()) == ["classInd.txt", "testlist01.txt", "trainlist01.txt"]
    train = (out / "splits" / "trainlist01.txt").read_text().splitlines()
    assert all(re.fullmatch(r"\w+/\S+\.avi \d+", line) for line in train)
    assert all(int(line.split()[1]) == classes.index(line.split("/")[0]) + 1 for line in train)
    for video in read_video_csv(listed):
        link = out / "videos" / video.rel
        assert link.is_symlink() and os.path.isabs(os.readlink(link)) and link.resolve() == video.path.resolve()
    assert roles(index_of(out)) == roles(index_of(mydata))


def test_a_layout_is_replaced_whole_and_nothing_else_is(mydata, tmp_path):
    listed = write_csv(mydata, tmp_path / "videos.csv")
    out = lay_out(listed, tmp_path / "data" / "mine")
    rows = listed.read_text().splitlines()
    listed.write_text("\n".join(r for r in rows if "RedSquareMovingLeft" not in r) + "\n")
    lay_out(listed, out)
    assert "RedSquareMovingLeft" not in read_class_index(out / "splits" / "classInd.txt")
    assert not (out / "videos" / "RedSquareMovingLeft").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "mydata", "videos.csv"]  # no staging left
    # what Snakemake does before laying out again: the links go, the user's videos stay
    shutil.rmtree(out)
    assert len(list((mydata / "videos").glob("*/*.avi"))) == 24
    mine = tmp_path / "theirs"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(UserDatasetError, match=re.escape(f"{mine}: exists and is not a layout")):
        lay_out(listed, mine)
    assert (mine / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("damage,message", [
    (lambda root: shutil.rmtree(root / "videos"), "{root}/videos: missing"),
    (lambda root: (root / "splits" / "classInd.txt").unlink(), "{root}/splits/classInd.txt: missing"),
    (lambda root: (root / "splits" / "classInd.txt").write_text("1 A\nthree B\n"),
     "{root}/splits/classInd.txt:2: expected '<index> <ClassName>'"),
    (lambda root: shutil.rmtree(root), "{root}: no such folder"),
])
def test_a_folder_root_missing_a_part_is_named(mydata, tmp_path, damage, message):
    damage(mydata)
    with pytest.raises(ValueError, match=re.escape(message.format(root=mydata))):
        lay_out(mydata, tmp_path / "data" / "mine")
    assert not (tmp_path / "data" / "mine").exists()


def test_a_folder_root_without_the_splits_lists_is_named(mydata, tmp_path):
    with pytest.raises(UserDatasetError, match=re.escape(f"{mydata}/splits/trainlist02.txt: missing; dataset.split 2")):
        lay_out(mydata, tmp_path / "out", split=2)
    (mydata / "splits" / "testlist01.txt").unlink()
    with pytest.raises(ValueError, match=re.escape(f"{mydata}/splits: no trainlist0k.txt/testlist0k.txt pair")):
        lay_out(mydata, tmp_path / "out")


@pytest.mark.parametrize("lines,message", [
    (["file,class,set"], "{csv}:1: header 'file,class,set'; expected the columns path,label,split"),
    ([], "{csv}: empty; its first line is the header path,label,split"),
    (["path,label,split"], "{csv}: lists no videos"),
    (["path,label,split", "{video},A,train", "{video},A"], "{csv}:3: expected 3 fields (path,label,split), got 2"),
    (["path,label,split", '"{video},A,train', "x"], "{csv}:3: expected 3 fields (path,label,split), got 1"),
    (["path,label,split", "{video},A,validation"], "{csv}:2: split 'validation'; it is train or test"),
    (["path,label,split", "{video},A,train", "nowhere.avi,A,test"],
     "{csv}:3: {folder}/nowhere.avi does not exist (a path is relative to the CSV's folder"),
    (["path,label,split", "{video},Playing Guitar,train"], "{csv}:2: label 'Playing Guitar' is not a class folder name"),
    (["path,label,split", "{video},A,train", "{video},A,test"], "{csv}:3: lists the same video as line 2"),
    (["path,label,split", "{video},A,train", "{other},B,train"], "{csv}:3: names a video clip as line 2 does"),
    (["label,split,path", "A,train,{folder}"], "{csv}:2: {folder} is not a file"),
    (["path,label,split", "{spaced},A,train"], "{csv}:2: the file name 'take 2' cannot be written in a split list"),
])
def test_a_bad_csv_root_is_named_by_file_and_line(tmp_path, lines, message):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    video, other, spaced = tmp_path / "a" / "clip.avi", tmp_path / "b" / "clip.mp4", tmp_path / "b" / "take 2"
    for path in (video, other, spaced):
        path.write_bytes(b"")
    listed = tmp_path / "videos.csv"
    fill = dict(video=video, other=other, spaced=spaced, folder=tmp_path, csv=listed)
    listed.write_text("".join(f"{line.format(**fill)}\n" for line in lines))
    with pytest.raises(UserDatasetError, match=re.escape(message.format(**fill))):
        lay_out(listed, tmp_path / "data" / "mine")
    assert not (tmp_path / "data").exists()


def test_a_csv_root_that_is_not_utf8_is_named_by_line(tmp_path):
    listed = tmp_path / "videos.csv"
    listed.write_bytes(b"path,label,split\nclip\xe9.avi,A,train\n")
    with pytest.raises(UserDatasetError, match=re.escape(f"{listed}:2: not UTF-8 text")):
        read_video_csv(listed)
    with pytest.raises(UserDatasetError, match=re.escape(f"{tmp_path / 'gone.csv'}: no such file")):
        read_video_csv(tmp_path / "gone.csv")


def test_the_cli_lays_out_a_root_and_says_what_is_wrong_in_one_line(mydata, tmp_path, capsys):
    from svar.cli import main

    main(["dataset", "--root", str(mydata), "--out", str(tmp_path / "data" / "mine")])
    assert (tmp_path / "data" / "mine" / "videos").resolve() == (mydata / "videos").resolve()
    (tmp_path / "bad.csv").write_text("path,label,split\nclip.avi,A,later\n")
    with pytest.raises(SystemExit) as exit_:
        main(["dataset", "--root", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "data" / "bad")])
    assert exit_.value.code == 2
    assert f"svar dataset: error: {tmp_path / 'bad.csv'}:2: split 'later'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a built-in name or a root, not both
        main(["dataset", "--name", "ucf101", "--root", str(mydata), "--out", str(tmp_path / "x")])


# ---------------------------------------------------------------- the config


def user_config(**dataset):
    """The base config with a user dataset and a teacher that needs no generated pool."""
    overlay = {"dataset": {"name": "mydata", **dataset}, "teacher": {"pretrained": "none"}}
    return cfg.merge(cfg.read_yaml(CONFIGS / "config.yaml"), overlay)


def test_a_user_dataset_checks_clean_and_is_laid_out_under_its_name(mydata, tmp_path):
    for root in (mydata, write_csv(mydata, tmp_path / "videos.csv")):
        full = config_checks.check(user_config(root=str(root)), "my.yaml")
        assert dataset_folder(full) == "mydata"
    assert dataset_folder(config_checks.check(cfg.read_yaml(CONFIGS / "config.yaml"))).startswith("synthetic-")


@pytest.mark.parametrize("dataset,teacher,named", [
    ({"name": "mydata"}, {}, "dataset.name: 'mydata' is not a built-in dataset (hmdb51, synthetic, ucf101); to run "
                             "your own videos, set dataset.root"),
    ({"name": "ucf101", "root": "{mydata}"}, {}, "dataset.root: {mydata} is set, but dataset.name ucf101 is a built-in"),
    ({"root": "{tmp}/nowhere"}, {}, "dataset.root: {tmp}/nowhere does not exist; give a folder in UCF101's layout"),
    ({"root": "{mydata}", "split": 2}, {}, "dataset.root: {mydata}/splits/trainlist02.txt: missing; dataset.split 2"),
    ({"root": "{csv}", "split": 2}, {}, "dataset.split: 2, but a CSV root has one split"),
    ({"root": "{mydata}"}, {"pretrained": "generated"},
     "teacher.pretrained: generated is the generated dataset's own teacher, trained on its captioned pool; mydata "
     "needs open_clip weights (a pretrained tag"),
    ({"name": "archives", "root": "{mydata}"}, {}, "dataset.name: data/archives is svar's own folder"),
    ({"name": "synthetic-1234abcd", "root": "{mydata}"}, {}, "dataset.name: data/synthetic-1234abcd is svar's own"),
    ({"root": "data/mydata/videos.csv"}, {}, "dataset.root: data/mydata/videos.csv is inside data/mydata"),
])
def test_a_wrong_user_dataset_is_named_before_any_job(mydata, tmp_path, dataset, teacher, named):
    listed = write_csv(mydata, tmp_path / "videos.csv")
    fill = dict(mydata=mydata, tmp=tmp_path, csv=listed)
    config = user_config(**{k: v.format(**fill) if isinstance(v, str) else v for k, v in dataset.items()})
    config["teacher"].update(teacher)
    with pytest.raises(cfg.ConfigError, match=re.escape(named.format(**fill))):
        config_checks.check(config, "my.yaml")


def test_a_dataset_name_must_be_a_folder_name():
    with pytest.raises(cfg.ConfigError, match=re.escape("dataset.name: 'my data' does not match")):
        cfg.validate(user_config(name="my data", root="/x"))


def test_the_example_overlay_is_valid_and_checks_clean_once_pointed_at_videos(mydata):
    example = cfg.read_yaml(CONFIGS / "mydata.example.yaml")
    assert example["dataset"] == {"name": "mydata", "root": "/path/to/mydata"}
    full = cfg.load_workflow_config(CONFIGS / "mydata.example.yaml")
    with pytest.raises(cfg.ConfigError, match=re.escape("dataset.root: /path/to/mydata does not exist")):
        config_checks.check(full)
    full["dataset"]["root"] = str(mydata)
    assert config_checks.problems(full) == []


# ---------------------------------------------------------------- end to end
# A user's folder and a user's CSV run end to end, report included, in the rehearsals of
# mydata.example.yaml and mydata-3dcnn.example.yaml (tests/test_rehearsal.py); that both index as
# their source is tested above.
