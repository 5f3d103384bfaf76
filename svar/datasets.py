"""UCF101 and HMDB51 from their official archives, laid out like the generated dataset.

Every dataset ends up as `<out>/videos/<Class>/<video>.avi` plus `<out>/splits/` in UCF101's
split format (`classInd.txt`, `trainlist0k.txt`, `testlist0k.txt`), so one reader (svar.manifest)
serves the generated set, UCF101 and HMDB51 alike. HMDB51's own split files (one per class and
split, lines `<video>.avi <0|1|2>`: 1 train, 2 test, 0 unused) are converted to that format.

The archives come from `svar download` (svar.download), or from a folder of archives already
on disk (`dataset.archives_dir`) — on a cluster node without internet.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from .atomic import write_text
from .download import KNOWN_ARCHIVES, verify
from .extract import extract, extract_nested

log = logging.getLogger(__name__)

# the archives each dataset is built from: (videos, official splits)
ARCHIVES = {
    "ucf101": ("UCF101.rar", "UCF101TrainTestSplits-RecognitionTask.zip"),
    "hmdb51": ("hmdb51_org.rar", "test_train_splits.rar"),
}
HMDB_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[123])\.txt$")


# the TFDS mirror holds the same UCF101 videos as a ZIP: an alternative to the slow official server
VIDEO_ARCHIVE_ALTERNATIVES = {"ucf101": ("UCF101.rar", "UCF101_videos.zip"), "hmdb51": ("hmdb51_org.rar",)}


def archive_paths(name: str, folder: str | os.PathLike, video_archive: str = "") -> list[Path]:
    """[video archive, split archive] of a dataset in `folder`; `video_archive` picks an alternative."""
    if name not in ARCHIVES:
        raise ValueError(f"dataset.name: no archives are known for {name!r}; choose from {sorted(ARCHIVES)}")
    videos, splits = ARCHIVES[name]
    if video_archive:
        if video_archive not in VIDEO_ARCHIVE_ALTERNATIVES[name]:
            raise ValueError(f"dataset.video_archive: {video_archive!r} does not hold {name}'s videos; "
                             f"choose from {VIDEO_ARCHIVE_ALTERNATIVES[name]}")
        videos = video_archive
    return [Path(folder) / videos, Path(folder) / splits]


def _class_dirs(root: Path) -> Path:
    """The folder whose sub-folders are the classes (those holding .avi files), wherever the
    archive nests it (UCF101.rar: `UCF-101/`; a flat archive: the root itself)."""
    for folder in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        subdirs = [d for d in folder.iterdir() if d.is_dir()]
        if subdirs and all(any(d.glob("*.avi")) for d in subdirs):
            return folder
    raise FileNotFoundError(f"{root}: no folder of class folders holding .avi videos; is this the video archive?")


def _find_one(root: Path, name: str) -> Path:
    found = sorted(root.rglob(name))
    if not found:
        raise FileNotFoundError(f"{root}: the split archive holds no {name}")
    return found[0]


def prepare_ucf101(videos_archive: Path, splits_archive: Path, out: Path, work: Path) -> None:
    extract(videos_archive, work / "videos")
    extract(splits_archive, work / "splits")
    (out / "splits").mkdir(parents=True, exist_ok=True)
    for k in (1, 2, 3):
        for role in ("train", "test"):
            src = _find_one(work / "splits", f"{role}list0{k}.txt")
            shutil.copyfile(src, out / "splits" / src.name)
    shutil.copyfile(_find_one(work / "splits", "classInd.txt"), out / "splits" / "classInd.txt")
    os.replace(_class_dirs(work / "videos"), out / "videos")


def hmdb_split_lists(split_dir: Path) -> tuple[list[str], dict[int, tuple[list[str], list[str]]]]:
    """Classes (alphabetical, HMDB51's convention) and {k: (train lines, test lines)} in UCF101's format."""
    files = {}
    for path in sorted(split_dir.rglob("*_test_split*.txt")):
        match = HMDB_SPLIT_FILE.match(path.name)
        if match:
            files[(match["cls"], int(match["k"]))] = path
    if not files:
        raise FileNotFoundError(f"{split_dir}: no <class>_test_split<k>.txt files; is this test_train_splits.rar?")
    classes = sorted({cls for cls, _ in files})
    splits = {}
    for k in sorted({k for _, k in files}):
        train, test = [], []
        for label, cls in enumerate(classes, 1):
            path = files.get((cls, k))
            if path is None:
                raise FileNotFoundError(f"{split_dir}: {cls}_test_split{k}.txt is missing")
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise ValueError(f"{path}:{lineno}: expected '<video>.avi <0|1|2>', got {line!r}")
                if parts[1] == "1":
                    train.append(f"{cls}/{parts[0]} {label}")
                elif parts[1] == "2":
                    test.append(f"{cls}/{parts[0]}")
        splits[k] = (train, test)
    return classes, splits


def prepare_hmdb51(videos_archive: Path, splits_archive: Path, out: Path, work: Path) -> None:
    extract_nested(videos_archive, work / "videos")
    extract(splits_archive, work / "splits")
    classes, splits = hmdb_split_lists(work / "splits")
    for k, (train, test) in splits.items():
        write_text(out / "splits" / f"trainlist0{k}.txt", "".join(f"{line}\n" for line in train))
        write_text(out / "splits" / f"testlist0{k}.txt", "".join(f"{line}\n" for line in test))
    write_text(out / "splits" / "classInd.txt", "".join(f"{i} {c}\n" for i, c in enumerate(classes, 1)))
    os.replace(_class_dirs(work / "videos"), out / "videos")


def prepare(name: str, archives: list[str | os.PathLike], out: str | os.PathLike, check: bool = True) -> Path:
    """Verify the archives' published digests, extract them, and lay out `out` (atomically)."""
    out = Path(out)
    if out.exists():
        log.info("%s exists; nothing to do", out)
        return out
    videos_archive, splits_archive = map(Path, archives)
    for path in (videos_archive, splits_archive):
        if not path.exists():
            raise FileNotFoundError(f"{path}: archive missing; run `svar download` or set dataset.archives_dir")
        if check and path.name in KNOWN_ARCHIVES:
            verify(path, KNOWN_ARCHIVES[path.name].checksums(), progress=True)
    staging = out.with_name(f".{out.name}.partial")
    work = out.with_name(f".{out.name}.extracted")  # kept across interruptions: extraction resumes
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    {"ucf101": prepare_ucf101, "hmdb51": prepare_hmdb51}[name](videos_archive, splits_archive, staging, work)
    staging.rename(out)
    shutil.rmtree(work)
    return out
