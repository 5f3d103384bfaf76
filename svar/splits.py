"""Label-fraction splits: which training videos are labeled, per (fraction, seed).

Class-balanced (the SVFormer convention): every class gets the same number of labeled videos,
k = ceil(fraction × N_train / C), capped by the class's size, so at least one per class —
"1%" of UCF101 is 101 videos, one per class. The rest of the training split is unlabeled; the
test set is the official test list. Fraction 1 labels every training video. The draw depends
only on (manifest, fraction, seed). A K-shot budget (the grid's `shots`, fraction None) labels K
videos a class, drawn the same way or imported from ViFi-CLIP's lists (convention vifi).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_csv, write_json
from .config import default
from .literature import CONVENTIONS as LIST_FORMATS  # published convention -> its list files' format
from .readers import read_csv
from .registry import Registry

ROLES = ("labeled", "unlabeled", "val", "test")
# how a fraction's labeled videos are chosen: each convention is a function
# (manifest, fraction, seed, split, lists_dir, pool) -> split table
SPLIT_CONVENTIONS = Registry("split convention", "dataset.split_convention")
# which training videos a fraction is drawn from: the manifest roles of split k they hold
POOLS = Registry("pool", "dataset.pool")
POOLS.register(("train", "unused"), name="all_but_test")  # the literature's: every video outside the test list
POOLS.register(("train",), name="official_train")          # the official train list only


def per_class_count(fraction: float, n_train: int, n_classes: int) -> int:
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    return max(1, math.ceil(round(fraction * n_train / n_classes, 9)))


def draw_key(fraction: float | None, shots: int | None = None) -> list[int]:
    """The label budget's part of every random draw's seed: a fraction's (as before K-shot
    budgets existed, so its splits are unchanged), or K's, which no fraction's can equal."""
    return [int(round(fraction * 1e6))] if shots is None else [int(shots), 3]


def make_split(manifest: pd.DataFrame, fraction: float | None, seed: int, split: int = default("dataset.split"),
               pool: str = default("dataset.pool"), shots: int | None = None) -> pd.DataFrame:
    """A table `video_id, label, role` covering the split's pool (`dataset.pool`: the training
    videos the fraction is drawn from, labeled or not) and its test videos. With `shots` K (and
    fraction None), K videos a class are labeled (all of a class with fewer)."""
    column = f"split{split}"
    if column not in manifest.columns:
        raise ValueError(f"the manifest has no official split {split} (columns: {list(manifest.columns)})")
    train = manifest[manifest[column].isin(POOLS[pool])].sort_values("video_id")
    test = manifest[manifest[column] == "test"].sort_values("video_id")
    n_classes = int(manifest["label"].max()) + 1
    if shots is not None and shots < 1:
        raise ValueError(f"shots: K labeled videos a class must be at least 1, got {shots}")
    k = int(shots) if shots is not None else per_class_count(fraction, len(train), n_classes)
    rng = np.random.default_rng([seed, *draw_key(fraction, shots)])
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


def make_random_split(manifest: pd.DataFrame, fraction: float | None, seed: int, split: int = default("dataset.split"),
                      pool: str = default("dataset.pool"), shots: int | None = None) -> pd.DataFrame:
    """The VideoSSL convention: floor(fraction × N_pool) videos drawn at random, whatever their
    class — a class may get none (VideoSSL's UCF101 5% list leaves one class unlabeled). Floor, as
    VideoSSL's lists count: UCF101 9,537 × 5/10/20/50% = 476/953/1,907/4,768; HMDB51 5,236 ×
    40/50/60% = 2,094/2,618/3,141. A draw of a fraction: K-shot budgets are drawn balanced."""
    if shots is not None:
        raise ValueError("dataset.split_convention random draws a fraction of the pool whatever the class; "
                         "K shots are K videos a class: use split_convention balanced (or vifi's lists)")
    # the same pools, table layout and fraction check as the balanced draw
    balanced = make_split(manifest, fraction, seed, split, pool)
    train = balanced[balanced["role"] != "test"]
    rng = np.random.default_rng([seed, int(round(fraction * 1e6)), 1])
    n = max(1, math.floor(round(fraction * len(train), 9)))
    labeled = set(rng.choice(train["video_id"].to_numpy(), size=n, replace=False).tolist())
    roles = [("labeled" if v in labeled else "unlabeled") if r != "test" else r
             for v, r in zip(balanced["video_id"], balanced["role"])]
    return balanced.assign(role=roles)


@SPLIT_CONVENTIONS.register(name="balanced")
def _balanced(manifest, fraction, seed, split, lists_dir, pool, shots=None):
    """k = ceil(f × N_pool / C) per class, at least one (SVFormer's convention); K a class for K shots."""
    return make_split(manifest, fraction, seed, split, pool, shots)


@SPLIT_CONVENTIONS.register(name="random")
def _random(manifest, fraction, seed, split, lists_dir, pool, shots=None):
    """floor(f × N_pool) drawn at random, whatever the class (VideoSSL's convention)."""
    return make_random_split(manifest, fraction, seed, split, pool, shots)


# How each published convention's lists were drawn, per dataset (checked on the lists themselves:
# ../shared/fixtures/splits/README.md). On HMDB51, SVFormer's and SeFAR's list_hmdb_<p> folders
# name exactly VideoSSL's random lists; on UCF101, SVFormer's 1%/10% (which SeFAR ships too) are
# class-balanced, SeFAR's 5% is its own random draw, VideoSSL's are random; ViFi-CLIP's K-shot
# lists are K videos a class. A fraction missing from a dataset's entry takes its None entry.
PUBLISHED_RULES = {
    "videossl": {"ucf101": {None: "random"}, "hmdb51": {None: "random"}},
    "svformer": {"ucf101": {None: "balanced"}, "hmdb51": {None: "random"}},
    "sefar": {"ucf101": {0.05: "random", None: "balanced"}, "hmdb51": {None: "random"}},
    "vifi": {"ucf101": {None: "balanced"}, "hmdb51": {None: "balanced"}},
}
# published conventions whose lists are the same videos on a dataset (at the fractions given; None: all)
SAME_LISTS = {
    "hmdb51": [({"videossl", "svformer", "sefar"}, None)],
    "ucf101": [({"svformer", "sefar"}, {0.01, 0.1})],
}


def published_rule(convention: str, dataset: str, fraction: float | None) -> str | None:
    """The rule a published convention's lists of (dataset, fraction) follow, None where it published none."""
    rules = PUBLISHED_RULES.get(convention, {}).get(dataset)
    if rules is None:
        return None
    return rules.get(round(fraction, 6) if fraction is not None else None, rules[None])


def comparable_conventions(dataset: str, convention: str, fraction: float | None,
                           shots: int | None = None) -> list[str]:
    """The published conventions (svar/data/published_results.csv, column split_convention) a run
    of `convention` on (dataset, fraction) is comparable with: for imported lists, the
    conventions whose lists are the same videos; for a draw (balanced, random), those whose lists
    were drawn by the same rule from the same pool. It depends on the dataset and the fraction:
    SVFormer's HMDB51 lists are VideoSSL's random ones, its UCF101 lists are balanced. A K-shot
    run (`shots`) compares with K-shot lists only (vifi), a fraction's with fraction lists only."""
    from .literature import SHOT_FORMATS

    by_shots = {c for c in PUBLISHED_RULES if LIST_FORMATS[c] in SHOT_FORMATS}
    eligible = by_shots if shots is not None else set(PUBLISHED_RULES) - by_shots
    if convention in PUBLISHED_RULES:  # imported: the same files, or files naming the same videos
        same = {convention}
        for group, fractions in SAME_LISTS.get(dataset, []):
            if convention in group and (fractions is None or fraction is None or round(fraction, 6) in fractions):
                same |= group
        return sorted(same & eligible)
    return sorted(c for c in eligible if published_rule(c, dataset, fraction) == convention)


def _published(convention: str):
    """A convention that imports the lists a paper published (the same labeled videos for every seed)."""

    def imported(manifest, fraction, seed, split, lists_dir, pool, shots=None):  # the lists define the pool
        from dataclasses import asdict

        from .literature import SHOT_FORMATS, discover_lists, discover_shot_lists, import_split

        if not lists_dir:
            raise ValueError(f"dataset.lists_dir: the {convention} convention imports published lists; "
                             "point lists_dir at the folder holding them")
        by_shots = LIST_FORMATS[convention] in SHOT_FORMATS
        if by_shots != (shots is not None):
            raise ValueError(f"dataset.split_convention {convention}: its lists are "
                             f"{'K-shot lists (the grid key shots)' if by_shots else 'fractions (the grid key fractions)'}"
                             f"; the run asks for {f'{shots} shots' if shots is not None else f'fraction {fraction}'}")
        if by_shots:
            published = discover_shot_lists(lists_dir)
            if shots not in published:
                raise ValueError(f"{lists_dir}: no published {convention} list for {shots} shots; "
                                 f"available: {sorted(published)}")
            lists = published[shots]
        else:
            published = discover_lists(lists_dir)
            key = min(published, key=lambda f: abs(f - fraction)) if published else None
            if key is None or abs(key - fraction) > 1e-9:
                raise ValueError(f"{lists_dir}: no published {convention} list for fraction {fraction}; "
                                 f"available: {sorted(published)}")
            lists = published[key]
        if lists.list_format != LIST_FORMATS[convention]:
            raise ValueError(f"{lists_dir}: holds lists of the {lists.list_format} format; the {convention} "
                             f"lists are {LIST_FORMATS[convention]}")
        table = import_split(manifest, **asdict(lists), split=split)
        # the files the split came from, for its provenance (split_info)
        table.attrs["list_files"] = [str(p) for p in (lists.labeled_file, lists.unlabeled_file, lists.pool_file,
                                                      lists.test_file) if p is not None]
        return table

    return imported


for _convention in LIST_FORMATS:  # the papers whose published lists svar.literature reads
    SPLIT_CONVENTIONS.register(_published(_convention), name=_convention)


def build_split(manifest: pd.DataFrame, fraction: float | None, seed: int, split: int = default("dataset.split"),
                convention: str = default("dataset.split_convention"), lists_dir=None,
                pool: str = default("dataset.pool"), val_per_class: int = default("dataset.val_per_class"),
                shots: int | None = None) -> pd.DataFrame:
    """The split under one of the conventions: drawn here from the pool (balanced, random) or
    imported from the lists a paper published (videossl, svformer, sefar); then the validation
    videos (`hold_out_validation`)."""
    table = SPLIT_CONVENTIONS[convention](manifest, fraction, seed, split, lists_dir, pool, shots)
    files = table.attrs.get("list_files", [])
    table = hold_out_validation(table, val_per_class, seed, fraction, shots)
    table.attrs["list_files"] = files
    return table


def hold_out_validation(table: pd.DataFrame, per_class: int, seed: int, fraction: float | None,
                        shots: int | None = None) -> pd.DataFrame:
    """`per_class` videos of each class move from the unlabeled videos to role `val`, drawn with the seed.

    They come from the unlabeled part, after the labeled videos are chosen, so the labeled set
    (and a published list) is the same with or without validation videos, and the labeled counts
    stay the literature's. At fraction 1 nothing is unlabeled, so there is no validation set.
    Validation videos are never trained on; they serve to choose hyperparameters and to log
    validation accuracy, never the test list."""
    if per_class < 0:
        raise ValueError(f"dataset.val_per_class: must be >= 0, got {per_class}")
    rng = np.random.default_rng([seed, *draw_key(fraction, shots), 2])
    unlabeled = table[table["role"] == "unlabeled"].sort_values("video_id")
    val = set()
    for _, ids in unlabeled.groupby("label", sort=True)["video_id"]:
        ids = ids.to_numpy()
        val.update(rng.choice(ids, size=min(per_class, len(ids)), replace=False).tolist())
    return table.assign(role=[("val" if v in val else r) for v, r in zip(table["video_id"], table["role"])])


def split_info(table: pd.DataFrame, fraction: float | None, seed: int, split: int, convention: str, pool: str,
               val_per_class: int, dataset: str = "", shots: int | None = None) -> dict:
    """How a split was made, for every number trained on it: the convention, the pool, where its
    lists came from (drawn with the seed, or published files with their sha256) and therefore
    what the seed varies, and its counts."""
    from .download import file_digests

    files = table.attrs.get("list_files", [])
    published = convention in LIST_FORMATS
    if published:
        listed = [{"file": str(f), "sha256": file_digests(f, ["sha256"])["sha256"]} for f in files]
        source = f"published {convention} lists: " + ", ".join(f"{Path(f['file']).name} (sha256 {f['sha256'][:12]})"
                                                               for f in listed)
    else:
        listed, source = [], f"drawn with seed {seed}"
    counts = table["role"].value_counts()
    return {
        "convention": convention,
        "comparable_with": comparable_conventions(dataset, convention, fraction, shots),
        "pool": "the published lists'" if published else pool,
        "official_split": split,
        "fraction": fraction,
        **({"shots": shots} if shots is not None else {}),
        "seed": seed,
        "list_source": source,
        "list_files": listed,
        "validation": f"{val_per_class} unlabeled videos a class, drawn with seed {seed}",
        # the same published labeled videos for every seed: the seed changes the initialisation only
        "seed_varies": "initialisation only (and the validation draw)" if published else "split and initialisation",
        "counts": {role: int(counts.get(role, 0)) for role in ROLES},
    }


def write_split(manifest: pd.DataFrame, fraction: float | None, seed: int, out, split: int = default("dataset.split"),
                convention: str = default("dataset.split_convention"), lists_dir=None,
                pool: str = default("dataset.pool"), val_per_class: int = default("dataset.val_per_class"),
                info_out=None, dataset: str = "", shots: int | None = None) -> pd.DataFrame:
    """The split table to `out` and, with `info_out`, its provenance (split_info) as JSON; `dataset`
    (dataset.name) says which published results the split is comparable with."""
    table = build_split(manifest, fraction, seed, split, convention, lists_dir, pool, val_per_class, shots)
    if info_out is not None:
        write_json(info_out, split_info(table, fraction, seed, split, convention, pool, val_per_class,
                                         dataset, shots))
    write_csv(out, table)
    return table


def labeled_fraction(table: pd.DataFrame) -> float:
    """The fraction of a split's pool (every non-test video) that is labeled: what a K-shot
    budget amounts to, recorded as its run's fraction so that tables and plots set K-shot runs
    on the same axis as fraction runs (the same for every seed: K a class, or the published list)."""
    pool = table[table["role"] != "test"]
    return float((pool["role"] == "labeled").sum() / len(pool))


def load_split(path) -> pd.DataFrame:
    """A split table rule splits wrote, checked before a job trusts it: its columns, a row at
    least, integer labels, known roles, and its counts of each role those its json sibling (how
    it was made, `svar splits --info-out`) recorded, when there is one. A table cut short or
    edited raises a CorruptFileError naming the file, what is wrong, and that rule splits remakes it."""
    from .readers import CorruptFileError, read_json

    table = read_csv(path, "split table", "splits")

    def refuse(reason: str):
        return CorruptFileError(path, "split table", "splits", reason)

    if sorted(table.columns) != ["label", "role", "video_id"]:
        raise refuse(f"its columns are {list(table.columns)}, not video_id, label, role")
    if table.empty:
        raise refuse("no rows below its header")
    if not pd.api.types.is_integer_dtype(table["label"]):
        raise refuse("a label that is not a whole number")
    unknown = sorted(set(map(str, table["role"])) - set(ROLES))
    if unknown:
        raise refuse(f"roles {unknown} that are none of {list(ROLES)}")
    info_path = Path(path).with_suffix(".json")
    info = read_json(info_path, "split info", "splits") if info_path.is_file() else None
    recorded = info.get("counts") if isinstance(info, dict) else None
    if isinstance(recorded, dict):
        counts = table["role"].value_counts()
        found = {role: int(counts.get(role, 0)) for role in ROLES}
        if found != {role: int(recorded.get(role, 0)) for role in ROLES}:
            raise refuse(f"its roles count {found}, but {info_path} recorded {recorded} when it was made")
    return table
