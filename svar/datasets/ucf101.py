"""UCF101 (Soomro, Zamir and Shah 2012): 13,320 videos of 101 actions, three official splits."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..archives import extract
from ..download import ArchiveInfo
from .base import DATASETS, Dataset, DatasetShape

# Full sha256 values as recorded by TensorFlow Datasets (tensorflow_datasets/url_checksums/ucf101.txt);
# each agrees with the ends of the digest published with the benchmark's data notes.
UCF101_RAR = ArchiveInfo("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar",
                         "UCF101's 13,320 videos in 101 class folders (6.5 GB); no digest recorded")
# the TFDS mirror holds the same videos as a ZIP: an alternative to the slow official server
UCF101_ZIP = ArchiveInfo("https://storage.googleapis.com/thumos14_files/UCF101_videos.zip",
                         "the TFDS mirror of UCF101's videos, as a ZIP (6.96 GB)",
                         sha256="dabf56f573cd19c79e096563529fec8126a2a34e18e10c72eb621dd687532b0d")
UCF101_SPLITS = ArchiveInfo("https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip",
                            "UCF101's classInd.txt and the three official train/test lists",
                            sha256="5c0d1a53b8ed364a2ac830a73f405e51bece7d98ce1254fd19ed4a36b224bd27")


def _find_one(root: Path, name: str) -> Path:
    found = sorted(root.rglob(name))
    if not found:
        raise FileNotFoundError(f"{root}: holds no {name} (UCF101's split lists, UCF101TrainTestSplits-RecognitionTask.zip's ucfTrainTestlist/)")
    return found[0]


@DATASETS.register
class UCF101(Dataset):
    name = "ucf101"
    video_archives = (UCF101_RAR, UCF101_ZIP)
    split_archive = UCF101_SPLITS
    # docs/datasets.md, "Pools, split conventions and their counts": its paper gives 13,320 clips, mean
    # length 7.21 s at 25 fps, 320×240
    published_shape = DatasetShape(9537, 3783, 7.21 * 25, 320, 240,
                                   "UCF101's published counts (split 1; mean 7.21 s at 25 fps)")

    @staticmethod
    def extract(videos_archive: Path, splits_archive: Path, work: Path) -> None:
        extract(videos_archive, work / "videos")
        extract(splits_archive, work / "splits")

    @staticmethod
    def write_splits(split_root: Path, out: Path) -> None:
        (out / "splits").mkdir(parents=True, exist_ok=True)
        for k in (1, 2, 3):
            for role in ("train", "test"):
                src = _find_one(split_root, f"{role}list0{k}.txt")
                shutil.copyfile(src, out / "splits" / src.name)
        shutil.copyfile(_find_one(split_root, "classInd.txt"), out / "splits" / "classInd.txt")
