"""Label-fraction splits: which training videos are labeled, per (fraction, seed).

Class-balanced (the SVFormer convention): every class gets the same number of labeled videos,
k = ceil(fraction × N_train / C), capped by the class's size, so at least one per class —
"1%" of UCF101 is 101 videos, one per class. The rest of the training split is unlabeled; the
test set is the official test list. Fraction 1 labels every training video. The draw depends
only on (manifest, fraction, seed).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .atomic import write_csv
from .config import default
from .literature import CONVENTIONS as LIST_FORMATS
from .readers import read_csv
from .registry import Registry

ROLES = ("labeled", "unlabeled", "test")
# how a fraction's labeled videos are chosen: each convention is a function
# (manifest, fraction, seed, split, lists_dir) -> split table
SPLIT_CONVENTIONS = Registry("split convention", "dataset.split_convention")


def per_class_count(fraction: float, n_train: int, n_classes: int) -> int:
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    return max(1, math.ceil(round(fraction * n_train / n_classes, 9)))


def make_split(manifest: pd.DataFrame, fraction: float, seed: int, split: int = default("dataset.split")) -> pd.DataFrame:
    """A table `video_id, label, role` covering the split's train and test videos."""
    column = f"split{split}"
    if column not in manifest.columns:
        raise ValueError(f"the manifest has no official split {split} (columns: {list(manifest.columns)})")
    train = manifest[manifest[column] == "train"].sort_values("video_id")
    test = manifest[manifest[column] == "test"].sort_values("video_id")
    n_classes = int(manifest["label"].max()) + 1
    k = per_class_count(fraction, len(train), n_classes)
    rng = np.random.default_rng([seed, int(round(fraction * 1e6))])
    labeled = set()
    for label in range(n_classes):
        ids = train.loc[train["label"] == label, "video_id"].to_numpy()
        if len(ids) == 0:
            continue
        # fraction 1 means every training video, however unbalanced the classes are
        size = len(ids) if fraction == 1 else min(k, len(ids))
        labeled.update(rng.choice(ids, size=size, replace=False).tolist())
    rows = [(v, int(lab), "labeled" if v in labeled else "unlabeled") for v, lab in zip(train["video_id"], train["label"])]
    rows += [(v, int(lab), "test") for v, lab in zip(test["video_id"], test["label"])]
    return pd.DataFrame(rows, columns=["video_id", "label", "role"])


def make_random_split(manifest: pd.DataFrame, fraction: float, seed: int,
                      split: int = default("dataset.split")) -> pd.DataFrame:
    """The VideoSSL convention: round(fraction × N_train) videos drawn at random, whatever their
    class — a class may get none (VideoSSL's UCF101 5% list leaves one class unlabeled)."""
    # the same pools, table layout and fraction check as the balanced draw
    balanced = make_split(manifest, fraction, seed, split)
    train = balanced[balanced["role"] != "test"]
    rng = np.random.default_rng([seed, int(round(fraction * 1e6)), 1])
    n = max(1, int(round(fraction * len(train))))
    labeled = set(rng.choice(train["video_id"].to_numpy(), size=n, replace=False).tolist())
    roles = [("labeled" if v in labeled else "unlabeled") if r != "test" else r
             for v, r in zip(balanced["video_id"], balanced["role"])]
    return balanced.assign(role=roles)


@SPLIT_CONVENTIONS.register(name="balanced")
def _balanced(manifest, fraction, seed, split, lists_dir):
    """k = ceil(f × N_train / C) per class, at least one (SVFormer's convention)."""
    return make_split(manifest, fraction, seed, split)


@SPLIT_CONVENTIONS.register(name="random")
def _random(manifest, fraction, seed, split, lists_dir):
    """round(f × N_train) drawn at random, whatever the class (VideoSSL's convention)."""
    return make_random_split(manifest, fraction, seed, split)


def _published(convention: str):
    """A convention that imports the lists a paper published (the same labeled videos for every seed)."""

    def imported(manifest, fraction, seed, split, lists_dir):
        from dataclasses import asdict

        from .literature import discover_lists, import_split

        if not lists_dir:
            raise ValueError(f"dataset.lists_dir: the {convention} convention imports published lists; "
                             "point lists_dir at the folder holding them")
        published = discover_lists(lists_dir)
        key = min(published, key=lambda f: abs(f - fraction)) if published else None
        if key is None or abs(key - fraction) > 1e-9:
            raise ValueError(f"{lists_dir}: no published {convention} list for fraction {fraction}; "
                             f"available: {sorted(published)}")
        lists = published[key]
        if lists.convention != convention:
            raise ValueError(f"{lists_dir}: holds {lists.convention} lists, not {convention}")
        return import_split(manifest, **asdict(lists))

    return imported


for _convention in LIST_FORMATS:  # the published list formats svar.literature reads
    SPLIT_CONVENTIONS.register(_published(_convention), name=_convention)


def build_split(manifest: pd.DataFrame, fraction: float, seed: int, split: int = default("dataset.split"),
                convention: str = default("dataset.split_convention"), lists_dir=None) -> pd.DataFrame:
    """The split under one of the conventions: drawn here (balanced, random) or imported from
    the lists a paper published (videossl, svformer)."""
    return SPLIT_CONVENTIONS[convention](manifest, fraction, seed, split, lists_dir)


def write_split(manifest: pd.DataFrame, fraction: float, seed: int, out, split: int = default("dataset.split"),
                convention: str = default("dataset.split_convention"), lists_dir=None) -> pd.DataFrame:
    table = build_split(manifest, fraction, seed, split, convention, lists_dir)
    write_csv(out, table)
    return table


def load_split(path) -> pd.DataFrame:
    table = read_csv(path, "split table", "splits")
    if set(table.columns) != {"video_id", "label", "role"} or not set(table["role"]) <= set(ROLES):
        raise ValueError(f"{path}: not a svar split table (video_id, label, role); run `svar splits`")
    return table
