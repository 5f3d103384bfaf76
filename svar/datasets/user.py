"""Your own videos (`dataset.root`): a folder in UCF101's layout, or a CSV, laid out as data/<name>.

A folder root holds `videos/<Class>/<file>` and `splits/` in UCF101's split format
(`classInd.txt`, `trainlist0k.txt`, `testlist0k.txt`, the generated set's too). It is linked,
not copied: data/<name>/videos and data/<name>/splits are absolute symlinks to the root's own
folders, so an edit of the user's folder is what the index reads (rule index's params digest
the lists and the videos through the links, svar.manifest.files_digest follows them).

A CSV root (header `path,label,split`) becomes the same layout: data/<name>/videos/<label>/<file>
symlinks to each listed video, and split 1's lists written in UCF101's format (classInd.txt
sorted by class name, 1-based). Either layout is built in a folder beside the target and renamed
into place, so data/<name> is complete or absent.

Nothing here is registered in DATASETS: that registry is what svar itself provides (the config's
enum, the CLI's choices); a user dataset is any folder-safe name with a root.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .base import DATASETS

CSV_COLUMNS = ("path", "label", "split")
SPLITS = ("train", "test")
# written into every layout made here: what it was laid out from, and the mark that lets a
# later layout replace it (anything else at the target is the user's, and is never removed)
ROOT_FILE = "root.txt"
# data/<this> is svar's own: rule download's archives
RESERVED = ("archives",)
SEE = "docs/datasets.md, \"Your own videos\""


class UserDatasetError(ValueError):
    """A dataset.root that cannot be laid out; the message names the file (and line) and what to do."""


@dataclass(frozen=True)
class Video:
    """One row of a CSV root: the video's absolute path, its class, train or test, and its line."""

    path: Path
    label: str
    split: str
    line: int

    @property
    def rel(self) -> str:
        """Its line in the split lists and its place under videos/: `<label>/<file name>`."""
        return f"{self.label}/{self.path.name}"


def is_csv(root: str | os.PathLike) -> bool:
    return Path(root).suffix.lower() == ".csv"


def check_folder(root: str | os.PathLike, split: int | None = None) -> None:
    """A folder root in UCF101's layout: videos/, splits/classInd.txt (readable) and split
    `split`'s train and test lists (any split's, when None). Raises naming the missing path."""
    from ..manifest import SPLIT_LISTS, read_class_index, split_files

    root = Path(root)
    layout = "videos/<Class>/<file> and splits/ in UCF101's format"
    if not root.is_dir():
        raise UserDatasetError(f"{root}: no such folder; a dataset.root folder holds {layout} ({SEE})")
    if not (root / "videos").is_dir():
        raise UserDatasetError(f"{root / 'videos'}: missing; a dataset.root folder holds {layout} ({SEE})")
    index = root / "splits" / "classInd.txt"
    if not index.is_file():
        raise UserDatasetError(f"{index}: missing; it lists the classes, one `<index> <Class>` a line from 1 "
                               f"({SEE})")
    read_class_index(index)  # its format errors name the file and line
    if split is None:
        split_files(root / "splits")  # raises naming the folder when no train/test pair is there
        return
    for role in ("train", "test"):
        path = root / "splits" / SPLIT_LISTS[role].format(split)
        if not path.is_file():
            raise UserDatasetError(f"{path}: missing; dataset.split {split} reads it (`<Class>/<file>` a line)")


def _fail(csv_path: Path, line: int, what: str) -> UserDatasetError:
    return UserDatasetError(f"{csv_path}:{line}: {what}")


def _listable(name: str) -> bool:
    """Whether a file name survives a split list line (svar.manifest.split_entries): no line
    break, no space at either end, and no last word of digits, which would read as a label."""
    if not name or name != name.strip() or "\n" in name or "\r" in name:
        return False
    fields = name.rsplit(None, 1)
    return not (len(fields) == 2 and fields[1].isdigit())


def _check_label(csv_path: Path, line: int, label: str) -> None:
    if not label:
        raise _fail(csv_path, line, "no label; give the video's class")
    if re.search(r"[\s/\\]", label) or label.startswith("."):
        raise _fail(csv_path, line, f"label {label!r} is not a class folder name (no spaces or slashes, not "
                                    "starting with a dot): write it as UCF101 does, PlayingGuitar, or "
                                    "playing_guitar (the teacher's prompts read both as 'playing guitar')")


def read_video_csv(csv_path: str | os.PathLike) -> list[Video]:
    """The rows of a CSV root, checked: the header, each line readable with three fields, a split
    of train or test, a class folder name, a video that exists; every video once, and no two
    with one file name in a class or one video id (file name without extension) at all."""
    csv_path = Path(csv_path)
    try:
        raw = csv_path.read_bytes()
    except FileNotFoundError:
        raise UserDatasetError(f"{csv_path}: no such file; dataset.root names a folder or a CSV ({SEE})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(csv_path, raw[:exc.start].count(b"\n") + 1, "not UTF-8 text; save the CSV as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    videos: list[Video] = []
    try:
        header = next(reader, None)
        if header is None:
            raise UserDatasetError(f"{csv_path}: empty; its first line is the header {','.join(CSV_COLUMNS)}")
        columns = [c.strip() for c in header]
        if sorted(columns) != sorted(CSV_COLUMNS):
            raise _fail(csv_path, 1, f"header {','.join(columns)!r}; expected the columns "
                                     f"{','.join(CSV_COLUMNS)} (in any order, no others)")
        at = {c: columns.index(c) for c in CSV_COLUMNS}
        for row in reader:
            line = reader.line_num
            if not any(field.strip() for field in row):
                continue
            if len(row) != len(CSV_COLUMNS):
                raise _fail(csv_path, line, f"expected {len(CSV_COLUMNS)} fields ({','.join(columns)}), "
                                            f"got {len(row)}: {row!r}")
            value, label, split = (row[at[c]].strip() for c in CSV_COLUMNS)
            if split not in SPLITS:
                raise _fail(csv_path, line, f"split {split!r}; it is train or test")
            _check_label(csv_path, line, label)
            if not value:
                raise _fail(csv_path, line, "no path; give the video's file")
            path = Path(value).expanduser()
            path = Path(os.path.abspath(path if path.is_absolute() else csv_path.parent / path))
            if not path.exists():
                raise _fail(csv_path, line, f"{path} does not exist (a path is relative to the CSV's folder, "
                                            f"{csv_path.parent.resolve()}, or absolute)")
            if not path.is_file():
                raise _fail(csv_path, line, f"{path} is not a file; each line names one video")
            if not _listable(path.name):
                raise _fail(csv_path, line, f"the file name {path.name!r} cannot be written in a split list "
                                            "(a space at either end, or a last word of digits); rename it")
            videos.append(Video(path, label, split, line))
    except csv.Error as exc:
        raise _fail(csv_path, reader.line_num, f"not readable as CSV ({exc})") from None
    if not videos:
        raise UserDatasetError(f"{csv_path}: lists no videos; add a line `path,label,split` for each")
    for key, what in ((lambda v: v.path, "lists the same video as line {}: each video is listed once"),
                      (lambda v: v.rel, "puts a video at {rel} as line {}: rename one of the files"),
                      (lambda v: v.path.stem, "names a video {stem} as line {} does (a video's id is its file name "
                                              "without extension, one per video): rename one of the files")):
        first: dict = {}
        for video in videos:
            earlier = first.setdefault(key(video), video)
            if earlier is not video:
                raise _fail(csv_path, video.line, what.format(earlier.line, rel=video.rel, stem=video.path.stem))
    return videos


def _write_folder(root: Path, staging: Path) -> None:
    for part in ("videos", "splits"):
        (staging / part).symlink_to(os.path.abspath(root / part), target_is_directory=True)


def _write_csv(videos: list[Video], staging: Path) -> None:
    classes = sorted({v.label for v in videos})
    label = {name: i for i, name in enumerate(classes, 1)}
    for video in videos:
        link = staging / "videos" / video.rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(video.path)
    splits = staging / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("".join(f"{i} {name}\n" for name, i in label.items()))
    (splits / "trainlist01.txt").write_text(
        "".join(f"{v.rel} {label[v.label]}\n" for v in videos if v.split == "train"))
    (splits / "testlist01.txt").write_text("".join(f"{v.rel}\n" for v in videos if v.split == "test"))


def lay_out(root: str | os.PathLike, out: str | os.PathLike, split: int | None = None) -> Path:
    """data/<name> (`out`) from a folder root or a CSV root, built beside it and renamed into
    place. Replaces a layout made here before (it holds root.txt), never anything else.
    `split`: a folder root must hold that split's lists (else any split's)."""
    root, out = Path(root).expanduser(), Path(out)
    videos = read_video_csv(root) if is_csv(root) else None  # checked before anything is written
    if videos is None:
        check_folder(root, split)
    if (out.exists() or out.is_symlink()) and not (out.is_dir() and (out / ROOT_FILE).is_file()):
        raise UserDatasetError(f"{out}: exists and is not a layout of a dataset.root (it holds no {ROOT_FILE}); "
                               "move it away, or lay the dataset out elsewhere")
    staging, old = out.with_name(f".{out.name}.partial"), out.with_name(f".{out.name}.old")
    for leftover in (staging, old):  # an interrupted layout's; they hold links and lists only
        if leftover.exists():
            shutil.rmtree(leftover)
    staging.mkdir(parents=True)
    if videos is None:
        _write_folder(root, staging)
    else:
        _write_csv(videos, staging)
    (staging / ROOT_FILE).write_text(f"{os.path.abspath(root)}\n")
    if out.exists():
        out.rename(old)
    staging.rename(out)
    if old.exists():
        shutil.rmtree(old)  # links are removed, never followed
    return out


def config_problems(config: dict) -> list[str]:
    """What is wrong with a complete config's user dataset, as `key: what is wrong` lines (for
    svar.config_checks.problems): its name free, its root there, outside data/<name> (which a rerun of
    rule dataset deletes), and a folder root in UCF101's layout with dataset.split's lists."""
    dataset = config["dataset"]
    name, root, split = dataset["name"], dataset["root"], dataset["split"]
    out = []
    generated = [n for n in DATASETS if DATASETS[n].generated]
    cache = Path(config["teacher"]["cache_dir"])
    reserved = {*RESERVED, *([cache.name] if cache.parent == Path("data") else [])}
    if name in reserved or any(name.startswith(f"{n}-") for n in generated):
        out.append(f"dataset.name: data/{name} is svar's own folder (archives, teacher weights, or a generated "
                   "dataset's); give your dataset another name")
    path = Path(root).expanduser()
    folder = Path(os.path.abspath(Path("data", name)))
    if Path(os.path.abspath(path)).is_relative_to(folder):
        out.append(f"dataset.root: {root} is inside data/{name}, the folder rule dataset lays {name} out in (and "
                   "removes before it does again); keep your videos elsewhere, or give the dataset another name")
    elif not path.exists():
        out.append(f"dataset.root: {root} does not exist; give a folder in UCF101's layout or a CSV "
                   f"(path,label,split) ({SEE})")
    elif is_csv(path):
        if not path.is_file():
            out.append(f"dataset.root: {root} is a folder; a CSV root is a file")
        elif split != 1:
            out.append(f"dataset.split: {split}, but a CSV root has one split (its train and test rows); "
                       "set dataset.split to 1")
    elif not path.is_dir():
        out.append(f"dataset.root: {root} is neither a folder nor a .csv file; give a folder in UCF101's "
                   f"layout or a CSV (path,label,split)")
    else:
        from ..manifest import SplitFormatError

        try:
            check_folder(path, split)
        except (UserDatasetError, SplitFormatError) as exc:
            out.append(f"dataset.root: {exc}")
    return out
