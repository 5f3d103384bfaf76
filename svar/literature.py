"""Label-fraction splits published by earlier semi-supervised work, matched to our manifest.

A result is only comparable with a paper's number when it is trained on the same labeled
videos, so besides drawing its own splits (`svar.splits`) the suite can import the lists that
VideoSSL and SVFormer published:

- VideoSSL (as republished by lambert-x/video-semisup): text files with one line per video,
  `Class/video_stem num_frames label_index`, named `<dataset>_train_<p>_percent_labeled_split_<k>_rawframes.txt`,
  `..._unlabeled_...`, `<dataset>_val_split_<k>_rawframes.txt` (the test list) and
  `<dataset>_train_split_<k>_rawframes.txt` (the whole training pool). HMDB51 comes with
  labeled lists only; its unlabeled set is the pool (the 100% list) minus the labeled videos.
- SVFormer, SeFAR: folders `list_<dataset>_<p>/` holding `train.csv` (labeled), `unlabel.csv`
  (SeFAR's UCF101 5%: `unlabe.csv`) and the test list (`test.csv`, or `val.csv`; some SeFAR
  folders hold none: the official test list of split 1 then serves), one line per video,
  `<path on the authors' machine> label_index` or `<path>,<label_index>` (SeFAR's), LF or CRLF.
- ViFi-CLIP (muzairkhattak/ViFi-CLIP, datasets_splits/<dataset>_splits/): K-shot lists
  `train1_few_shot_<K>.txt` (K labeled videos a class) and the test list `val1.txt`, one line
  per video, `<video file name> <0-based label_index>`, no class folder. The unlabeled videos are
  the rest of the pool (every video outside the test list).

Videos are matched by file stem, which is unique across classes in UCF101 and HMDB51. The
result has the same form as `svar.splits.make_split`, so every later stage uses it unchanged.

Labels always come from the manifest, never from the lists: the published HMDB51 lists give
132 videos the index of a neighbouring class (climb / climb_stairs, kick / kick_ball, sword /
sword_exercise) while their class folder is right. Such disagreements are logged as a warning;
a list whose class folders disagree with the manifest, or whose indices mostly disagree (a
different class numbering), is refused, since it does not describe this dataset.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

log = logging.getLogger(__name__)

# each published convention and the format of its list files: rawframe lists, or CSV folders
CONVENTIONS = {"videossl": "videossl", "svformer": "csv", "sefar": "csv", "vifi": "vifi"}
LIST_FORMATS = ("videossl", "csv", "vifi")
# the formats whose lists give K videos a class (the grid's `shots`), not a fraction
SHOT_FORMATS = ("vifi",)


class LiteratureListError(ValueError):
    """A published list cannot be read or used with this manifest; the message names the file."""


@dataclass(frozen=True)
class ListedVideo:
    """One line of a published list: the class folder it names (None: the format names none), the
    stem, the index it gives."""

    class_name: str | None
    stem: str
    label: int
    line: int


def _read_lines(path: Path, expected: str, parse) -> list[ListedVideo]:
    entries = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        entry = parse(line, lineno)
        if entry is None:
            raise LiteratureListError(f"{path}:{lineno}: expected {expected!r}, got {line!r}")
        entries.append(entry)
    return entries


def _parse_videossl(line: str, lineno: int) -> ListedVideo | None:
    parts = line.rsplit(maxsplit=2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    video = PurePosixPath(parts[0])
    if not video.parent.name:
        return None
    # the name has no extension in these lists, so it is the stem as it stands
    return ListedVideo(video.parent.name, video.name, int(parts[2]), lineno)


def _parse_csv(line: str, lineno: int) -> ListedVideo | None:
    parts = line.rsplit(",", 1) if "," in line else line.rsplit(maxsplit=1)
    parts = [p.strip() for p in parts]
    if len(parts) != 2 or not parts[1].isdigit():
        return None
    video = PurePosixPath(parts[0])
    if not video.suffix or not video.parent.name:
        return None
    return ListedVideo(video.parent.name, video.stem, int(parts[1]), lineno)


def _parse_vifi(line: str, lineno: int) -> ListedVideo | None:
    parts = line.rsplit(maxsplit=1)
    if len(parts) != 2 or not parts[1].isdigit():
        return None
    video = PurePosixPath(parts[0].strip())
    if not video.suffix:
        return None
    return ListedVideo(video.parent.name or None, video.stem, int(parts[1]), lineno)


def _entries(path: str | Path, list_format: str) -> list[ListedVideo]:
    if list_format == "videossl":
        return _read_lines(Path(path), "Class/video_stem num_frames label_index", _parse_videossl)
    if list_format == "csv":
        return _read_lines(Path(path), "/path/to/Class/video.avi label_index (or path,label_index)", _parse_csv)
    if list_format == "vifi":
        return _read_lines(Path(path), "video_file.avi label_index", _parse_vifi)
    raise ValueError(f"unknown list format {list_format!r}; expected one of {LIST_FORMATS}")


def read_videossl_list(path: str | Path) -> list[tuple[str, int]]:
    """A VideoSSL list as (video stem, label index) pairs, in file order."""
    return [(e.stem, e.label) for e in _entries(path, "videossl")]


def read_svformer_list(path: str | Path) -> list[tuple[str, int]]:
    """An SVFormer (or SeFAR) CSV list as (video stem, label index) pairs, in file order."""
    return [(e.stem, e.label) for e in _entries(path, "csv")]


def _match(by_stem: pd.DataFrame, path: Path, entries: list[ListedVideo], all_stems: set) -> list[str]:
    """The stems of `entries` that the manifest's decodable videos (indexed by video_id) hold,
    once the list is checked to describe this dataset: a line naming a video the manifest does
    not hold at all (`all_stems`) is an error; one whose video does not decode is left out and
    reported, as every stage leaves it out."""
    if not entries:
        raise LiteratureListError(f"{path}: the list is empty")
    seen: dict[str, int] = {}
    for e in entries:
        if e.stem in seen:
            raise LiteratureListError(f"{path}:{e.line}: {e.stem} is listed twice (first on line {seen[e.stem]})")
        seen[e.stem] = e.line

    unknown = [e for e in entries if e.stem not in all_stems]
    if unknown and len(unknown) < len(entries):
        e = unknown[0]
        raise LiteratureListError(
            f"{path}:{e.line}: {e.stem} is not a video of this dataset's manifest ({len(unknown)} such lines); "
            "a list must describe the dataset it is imported into: was the manifest built from fewer videos?")
    known = [e for e in entries if e.stem in by_stem.index]
    missing = [e.stem for e in entries if e.stem not in by_stem.index]
    if not known:
        raise LiteratureListError(
            f"{path}: none of its {len(entries)} videos (e.g. {entries[0].stem}) is in the manifest; "
            "is it a list for another dataset, or was the manifest built from other videos?")
    if missing:
        log.warning("%s: %d of %d listed videos are not among the manifest's decodable videos and are "
                    "left out (e.g. %s); the exclusions file says why a video does not decode",
                    path, len(missing), len(entries), ", ".join(missing[:3]))

    wrong_class = [e for e in known if e.class_name is not None and by_stem.at[e.stem, "class_name"] != e.class_name]
    if wrong_class:
        e = wrong_class[0]
        raise LiteratureListError(
            f"{path}:{e.line}: {e.stem} is in class {e.class_name} in the list but "
            f"{by_stem.at[e.stem, 'class_name']} in the manifest ({len(wrong_class)} such videos); "
            "the list does not describe this dataset")

    relabeled = [e for e in known if int(by_stem.at[e.stem, "label"]) != e.label]
    if 2 * len(relabeled) > len(known):
        e = relabeled[0]
        raise LiteratureListError(
            f"{path}: {len(relabeled)} of {len(known)} listed label indices differ from the manifest's "
            f"(line {e.line}: {e.class_name} is {e.label} in the list, {int(by_stem.at[e.stem, 'label'])} "
            "in the manifest); the list numbers classes differently from the manifest's classInd.txt")
    if relabeled:
        pairs = Counter((e.class_name, e.label) for e in relabeled)
        log.warning("%s: %d videos carry another class's label index (%s); the manifest's labels are used",
                    path, len(relabeled),
                    ", ".join(f"{n} {cls} as {label}" for (cls, label), n in sorted(pairs.items())))
    return [e.stem for e in known]


def _disjoint(a: set[str], b: set[str], name_a, name_b) -> None:
    both = sorted(a & b)
    if both:
        raise LiteratureListError(
            f"{len(both)} videos are both in {name_a} and in {name_b} (e.g. {both[0]}); "
            "a video can have only one role")


def import_split(manifest: pd.DataFrame, labeled_file: str | Path, test_file: str | Path | None = None,
                 unlabeled_file: str | Path | None = None, list_format: str = "videossl",
                 pool_file: str | Path | None = None, split: int = 1) -> pd.DataFrame:
    """A split table `video_id, label, role` (as `svar.splits.make_split` writes) from published lists.

    Only the manifest's decodable videos take part: a listed video that does not decode is
    reported and left out; a listed video the manifest does not hold is an error naming the line.

    The unlabeled videos are, in order of preference: those of `unlabeled_file`; those of
    `pool_file` (the whole training pool, e.g. HMDB51's 100% list) that are not labeled; or, with
    neither, every manifest video that is neither labeled nor test, which is how VideoSSL defines
    the pool (every video outside the split-1 test list). Without a test file the official test
    list of `split` is the test set (some SeFAR folders ship none).
    """
    if unlabeled_file is not None and pool_file is not None:
        raise ValueError("give unlabeled_file or pool_file, not both: the pool defines the unlabeled set")
    if manifest["video_id"].duplicated().any():
        raise ValueError("the manifest's video_id values must be unique to match lists by stem")
    # a listed video that no decoder reads is left out, as every later stage leaves it out
    by_stem = manifest[manifest["decodes"].astype(str) == "True"].set_index("video_id")
    all_stems = set(manifest["video_id"])

    def listed(path) -> list[str]:
        path = Path(path)
        return _match(by_stem, path, _entries(path, list_format), all_stems)

    labeled = set(listed(labeled_file))
    if test_file is None:
        test_file = f"the official test list of split {split}"
        test = set(by_stem.index[by_stem[f"split{split}"] == "test"])
    else:
        test = set(listed(test_file))
    _disjoint(labeled, test, labeled_file, test_file)
    if unlabeled_file is not None:
        unlabeled = set(listed(unlabeled_file))
        _disjoint(labeled, unlabeled, labeled_file, unlabeled_file)
        _disjoint(unlabeled, test, unlabeled_file, test_file)
    elif pool_file is not None:
        pool = set(listed(pool_file))
        outside = sorted(labeled - pool)
        if outside:
            raise LiteratureListError(
                f"{len(outside)} labeled videos of {labeled_file} are not in the pool {pool_file} "
                f"(e.g. {outside[0]}); the pool must hold every training video")
        _disjoint(pool, test, pool_file, test_file)
        unlabeled = pool - labeled
    else:
        unlabeled = set(by_stem.index) - labeled - test

    label = by_stem["label"]
    rows = [(v, int(label[v]), "labeled" if v in labeled else "unlabeled") for v in sorted(labeled | unlabeled)]
    rows += [(v, int(label[v]), "test") for v in sorted(test)]
    return pd.DataFrame(rows, columns=["video_id", "label", "role"])


@dataclass(frozen=True)
class PublishedLists:
    """The files of one published label fraction, named as `import_split`'s arguments.

    So `import_split(manifest, **dataclasses.asdict(discover_lists(folder)[0.1]))` imports 10%.
    """

    list_format: str
    labeled_file: Path
    test_file: Path | None = None
    unlabeled_file: Path | None = None
    pool_file: Path | None = None


_VIDEOSSL_LABELED = re.compile(r"(?P<dataset>\w+?)_train_(?P<percent>\d+(?:\.\d+)?)_percent_labeled_split_(?P<split>\d+)_rawframes\.txt")
_SVFORMER_FOLDER = re.compile(r"list_(?P<dataset>[A-Za-z0-9]+)_(?P<percent>\d+(?:\.\d+)?)")


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise LiteratureListError(f"{path}: the {what} list is missing")
    return path


def _videossl_lists(folder: Path) -> dict[tuple[str, str, float], PublishedLists]:
    found = {}
    for labeled in sorted(folder.glob("*_percent_labeled_split_*_rawframes.txt")):
        m = _VIDEOSSL_LABELED.fullmatch(labeled.name)
        if m is None:
            continue
        dataset, percent, split = m["dataset"], m["percent"], m["split"]
        unlabeled = folder / f"{dataset}_train_{percent}_percent_unlabeled_split_{split}_rawframes.txt"
        pool = folder / f"{dataset}_train_split_{split}_rawframes.txt"
        if not pool.is_file():  # HMDB51: the 100% list is the pool
            pool = folder / f"{dataset}_train_100_percent_labeled_split_{split}_rawframes.txt"
        found[(dataset, split, float(percent) / 100)] = PublishedLists(
            list_format="videossl",
            labeled_file=labeled,
            test_file=_require(folder / f"{dataset}_val_split_{split}_rawframes.txt", "test (val)"),
            unlabeled_file=unlabeled if unlabeled.is_file() else None,
            pool_file=None if unlabeled.is_file() or not pool.is_file() else pool,
        )
    return found


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _csv_lists(folder: Path) -> dict[tuple[str, str, float], PublishedLists]:
    found = {}
    for sub in sorted([folder, *folder.iterdir()]):
        m = _SVFORMER_FOLDER.fullmatch(sub.name)
        if m is None or not sub.is_dir():
            continue
        unlabeled = _first(sub, ("unlabel.csv", "unlabe.csv"))  # SeFAR's UCF101 5% folder: unlabe.csv
        if unlabeled is None:
            raise LiteratureListError(f"{sub}: the unlabeled list (unlabel.csv or unlabe.csv) is missing")
        found[(m["dataset"], "1", float(m["percent"]) / 100)] = PublishedLists(
            list_format="csv",
            labeled_file=_require(sub / "train.csv", "labeled (train.csv)"),
            test_file=_first(sub, ("test.csv", "val.csv")),  # none: the official test list of split 1
            unlabeled_file=unlabeled,
        )
    return found


_VIFI_SHOTS = re.compile(r"train(?P<split>\d+)_few_shot_(?P<shots>\d+)\.txt")


def discover_shot_lists(folder: str | Path) -> dict[int, PublishedLists]:
    """ViFi-CLIP's K-shot lists in `folder` (its datasets_splits/<dataset>_splits/), keyed by K:
    `train<k>_few_shot_<K>.txt` labeled, `val<k>.txt` the test list of split k."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of published split lists")
    found = {}
    for labeled in sorted(folder.glob("train*_few_shot_*.txt")):
        m = _VIFI_SHOTS.fullmatch(labeled.name)
        if m is None:
            continue
        found[int(m["shots"])] = PublishedLists(
            list_format="vifi", labeled_file=labeled,
            test_file=_require(folder / f"val{m['split']}.txt", f"test (val{m['split']}.txt)"))
    if not found:
        raise LiteratureListError(f"{folder}: no K-shot lists found; expected ViFi-CLIP's "
                                  "'train1_few_shot_<K>.txt' with its test list 'val1.txt'")
    return found


def discover_lists(folder: str | Path) -> dict[float, PublishedLists]:
    """The published label fractions in `folder`, keyed by fraction (0.1 for the 10% lists).

    `folder` holds VideoSSL list files, SVFormer `list_<dataset>_<p>/` folders, or is one such
    folder. A folder must hold the lists of one dataset and one split, so that a fraction names
    one set of files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of published split lists")
    found = {**_videossl_lists(folder), **_csv_lists(folder)}
    if not found:
        raise LiteratureListError(
            f"{folder}: no published lists found; expected VideoSSL files "
            "'<dataset>_train_<p>_percent_labeled_split_<k>_rawframes.txt' or SVFormer folders "
            "'list_<dataset>_<p>/' with train.csv, unlabel.csv and test.csv")
    kinds = sorted({(lists.list_format, dataset, split) for (dataset, split, _), lists in found.items()})
    if len(kinds) > 1:
        raise LiteratureListError(
            f"{folder}: lists of several datasets, splits or conventions {kinds}; "
            "keep each in its own folder so that a fraction names one set of files")
    return {fraction: lists for (_, _, fraction), lists in sorted(found.items())}
