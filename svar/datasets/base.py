"""What a dataset module defines, and the layout every dataset ends up in.

Every dataset is laid out as `<out>/videos/<Class>/<video>.avi` plus `<out>/splits/` in
UCF101's split format (`classInd.txt`, `trainlist0k.txt`, `testlist0k.txt`), so one reader
(svar.manifest) serves them all. A dataset built from official archives names them (where they
are published, their digests) and turns them into that layout; the generated one writes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..download import ArchiveInfo
from ..registry import Registry

# every dataset module of this package registers its Dataset here (svar.datasets imports them all)
DATASETS = Registry("dataset", "dataset.name")


@dataclass
class DatasetShape:
    """What a plan needs of a dataset: its train-part and test-part videos, frames a video, frame size."""

    train_videos: int
    test_videos: int
    frames: float
    width: int
    height: int
    source: str
    frame_counts: tuple | None = None  # (train part, test part) arrays of frame counts, from a manifest

    @property
    def videos(self) -> int:
        return self.train_videos + self.test_videos


class Dataset:
    """One registered dataset (svar.datasets.DATASETS). Subclasses set:

    name            the config's dataset.name (and its folder under data/, see `folder`)
    generated       True for a dataset svar writes itself (no archives)
    video_archives  the archives holding its videos: the first is the default, the others
                    alternatives that dataset.video_archive may pick (the same videos)
    split_archive   the archive holding its official split lists
    published_shape its split 1 as its paper counts it (videos, mean frames, frame size): the
                    shape a plan uses before `svar index` has run (svar.datasets.dataset_shape)
    """

    name = ""
    generated = False
    video_archives: tuple[ArchiveInfo, ...] = ()
    split_archive: ArchiveInfo | None = None
    published_shape: DatasetShape | None = None

    @classmethod
    def shape(cls, dataset_config: dict) -> DatasetShape | None:
        """The dataset's shape before it is indexed (None: unknown): its published one."""
        return cls.published_shape

    @classmethod
    def folder(cls, dataset_config: dict) -> str:
        """The dataset's folder under data/, named by what makes its videos: a dataset built
        from checksummed archives is always the same, so its name serves."""
        return cls.name

    @classmethod
    def archives(cls) -> tuple[ArchiveInfo, ...]:
        return (*cls.video_archives, *([cls.split_archive] if cls.split_archive else []))

    @staticmethod
    def write_splits(split_root: Path, out: Path) -> None:
        """Write `out`/splits in UCF101's format from the dataset's own split files, found
        anywhere under `split_root` (the split archive extracted, or a folder holding it)."""
        raise NotImplementedError

    @staticmethod
    def extract(videos_archive: Path, splits_archive: Path, work: Path) -> None:
        """Extract the archives into `work`/videos and `work`/splits (kept across interruptions)."""
        raise NotImplementedError

    @classmethod
    def lay_out(cls, videos_archive: Path, splits_archive: Path, out: Path, work: Path) -> None:
        """Extract the archives (into `work`) and write `out`: the videos moved there."""
        cls.extract(videos_archive, splits_archive, work)
        cls.write_splits(work / "splits", out)
        os.replace(class_dirs(work / "videos"), out / "videos")

    @classmethod
    def lay_out_extracted(cls, folder: Path, out: Path) -> None:
        """Write `out` from a folder where the archives are already extracted (a cluster's shared
        copy, dataset.extracted_dir): the splits converted, `out`/videos an absolute symlink to
        its folder of class folders, so the videos stay where they are."""
        cls.write_splits(folder, out)
        os.symlink(class_dirs(folder).resolve(), out / "videos", target_is_directory=True)


def class_dirs(root: Path) -> Path:
    """The folder whose sub-folders are the classes (those holding .avi files), wherever the
    archive nests it (UCF101.rar: `UCF-101/`; a flat archive: the root itself)."""
    for folder in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        subdirs = [d for d in folder.iterdir() if d.is_dir()]
        if subdirs and all(any(d.glob("*.avi")) for d in subdirs):
            return folder
    raise FileNotFoundError(f"{root}: no folder of class folders holding .avi videos; is this the video archive?")
