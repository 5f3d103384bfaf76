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

ROLES = ("labeled", "unlabeled", "test")


def per_class_count(fraction: float, n_train: int, n_classes: int) -> int:
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    return max(1, math.ceil(round(fraction * n_train / n_classes, 9)))


def make_split(manifest: pd.DataFrame, fraction: float, seed: int, split: int = 1) -> pd.DataFrame:
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


def write_split(manifest: pd.DataFrame, fraction: float, seed: int, out, split: int = 1) -> pd.DataFrame:
    table = make_split(manifest, fraction, seed, split)
    write_csv(out, table)
    return table


def load_split(path) -> pd.DataFrame:
    table = pd.read_csv(path, keep_default_na=False)
    if set(table.columns) != {"video_id", "label", "role"} or not set(table["role"]) <= set(ROLES):
        raise ValueError(f"{path}: not a svar split table (video_id, label, role); run `svar splits`")
    return table
