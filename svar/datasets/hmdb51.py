"""HMDB51 (Kuehne et al. 2011): 6,766 videos of 51 actions, three official splits.

Its archive is a RAR of 51 RARs, one per class; its split files (one per class and split, lines
`<video>.avi <0|1|2>`: 1 train, 2 test, 0 unused) are converted to UCF101's format.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..archives import extract, extract_nested
from ..atomic import write_text
from ..download import ArchiveInfo
from .base import DATASETS, Dataset, DatasetShape

# sha256 as recorded by torchvision's prototype datasets (torchvision/prototype/datasets/_builtin/hmdb51.py)
HMDB51_RAR = ArchiveInfo("http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",
                         "HMDB51's videos: a RAR of 51 RARs, one per class (2 GB)",
                         sha256="9e714a0d8b76104d76e932764a7ca636f929fff66279cda3f2e326fa912a328e")
HMDB51_SPLITS = ArchiveInfo("http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar",
                            "HMDB51's three official splits, one file per class and split",
                            md5="15e67781e70dcfbdce2d7dbb9b3344b5")
HMDB_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[123])\.txt$")


def hmdb_split_lists(split_dir: Path) -> tuple[list[str], dict[int, tuple[list[str], list[str], list[str]]]]:
    """Classes (alphabetical, HMDB51's convention) and {k: (train lines, test lines, unused lines)}
    in UCF101's format. The unused videos (marked 0) are outside split k's test list: the pool the
    semi-supervised literature draws its labels from is train and unused together."""
    files = {}
    for path in sorted(split_dir.rglob("*_test_split*.txt")):
        match = HMDB_SPLIT_FILE.match(path.name)
        if match:
            files[(match["cls"], int(match["k"]))] = path
    if not files:
        raise FileNotFoundError(f"{split_dir}: no <class>_test_split<k>.txt files (HMDB51's split files, as test_train_splits.rar's testTrainMulti_7030_splits/ holds them)")
    classes = sorted({cls for cls, _ in files})
    splits = {}
    for k in sorted({k for _, k in files}):
        train, test, unused = [], [], []
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
                else:
                    unused.append(f"{cls}/{parts[0]} {label}")
        splits[k] = (train, test, unused)
    return classes, splits


@DATASETS.register
class HMDB51(Dataset):
    name = "hmdb51"
    video_archives = (HMDB51_RAR,)
    split_archive = HMDB51_SPLITS
    # docs/datasets.md, "Pools, split conventions and their counts"; its paper gives no mean length: 90
    # frames (3 s at 30 fps) is an assumption, said as such in the plan
    published_shape = DatasetShape(5236, 1530, 90, 320, 240,
                                   "HMDB51's published counts (split 1); 90 frames a video assumed (no published mean)")

    @staticmethod
    def extract(videos_archive: Path, splits_archive: Path, work: Path) -> None:
        extract_nested(videos_archive, work / "videos")
        extract(splits_archive, work / "splits")

    @staticmethod
    def write_splits(split_root: Path, out: Path) -> None:
        classes, splits = hmdb_split_lists(split_root)
        for k, (train, test, unused) in splits.items():
            write_text(out / "splits" / f"trainlist0{k}.txt", "".join(f"{line}\n" for line in train))
            write_text(out / "splits" / f"testlist0{k}.txt", "".join(f"{line}\n" for line in test))
            # svar's addition to UCF101's format: the videos split k neither trains nor tests on
            write_text(out / "splits" / f"unusedlist0{k}.txt", "".join(f"{line}\n" for line in unused))
        write_text(out / "splits" / "classInd.txt", "".join(f"{i} {c}\n" for i, c in enumerate(classes, 1)))
