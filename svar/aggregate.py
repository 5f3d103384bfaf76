"""Collect per-run metrics into tables: the long one, the summary over seeds, and the summary's
forms for DVC (nested JSON metrics, a per-fraction CSV for `dvc plots`). The figures are the
report stage's (svar/report/)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_csv, write_json
from .readers import read_json
from .wording import counted

log = logging.getLogger(__name__)

METRICS = ("top1", "top5", "mean_class")


# what each metrics.csv row says of how its split was made (svar.splits.split_info)
SPLIT_COLUMNS = ("convention", "list_source", "seed_varies")
UNRECORDED = "unrecorded (trained without svar splits --info-out)"
# what a summary row is one of: the teacher is a grid axis (config `teachers`)
GROUP = ["dataset", "teacher", "method", "fraction"]


def teacher_label(run: dict) -> str:
    """The teacher a run's numbers were made with, as tables name it: model / weights."""
    provenance = run.get("provenance") or {}
    return f"{provenance.get('teacher_model', 'unrecorded')} / {provenance.get('teacher_weights', 'unrecorded')}"


def with_teacher(frame: pd.DataFrame) -> pd.DataFrame:
    """A long table as svar writes it, a teacher column included (tables older than the teacher
    axis have none: theirs is unrecorded)."""
    return frame if "teacher" in frame.columns else frame.assign(teacher="unrecorded")


def several_teachers(frame: pd.DataFrame) -> bool:
    return with_teacher(frame)["teacher"].nunique() > 1


def collect(metric_files) -> pd.DataFrame:
    """One row per run and metric, with the split's convention, list source and what the seed
    varies. One dataset's runs must share a convention: numbers drawn under two conventions are
    not one column of a table (give each its own config name)."""
    rows, shots = [], False
    for path in metric_files:
        run = read_json(path, "run's metrics", "evaluate")
        shots |= "shots" in run
        split = run.get("split") or {}
        made = {key: split.get(key, UNRECORDED) for key in SPLIT_COLUMNS}
        for metric in METRICS:
            # missing (None): a metric that says nothing here, e.g. top-5 with 5 classes or fewer
            value = float("nan") if run[metric] is None else float(run[metric])
            if not (value != value or 0.0 <= value <= 1.0):
                raise ValueError(f"{path}: {metric} = {value} is not in [0, 1]")
            rows.append({"dataset": run["dataset"], "teacher": teacher_label(run), "method": run["method"],
                         "fraction": float(run["fraction"]), "shots": run.get("shots"), "seed": int(run["seed"]),
                         "metric": metric, "value": value, **made})
    # a K-shot run's fraction is the labeled fraction K shots amount to; its K is the column
    # shots, which a table of fraction runs alone does not have (its bytes as before the axis)
    columns = ["dataset", "teacher", "method", "fraction", *(["shots"] if shots else []), "seed", "metric", "value",
               *SPLIT_COLUMNS]
    frame = pd.DataFrame(rows, columns=columns)
    if shots:
        frame["shots"] = frame["shots"].astype("Int64")
    mixed = frame.groupby("dataset")["convention"].nunique()
    if (mixed > 1).any():
        dataset = mixed[mixed > 1].index[0]
        raise ValueError(f"{dataset}: runs of split conventions {sorted(frame[frame.dataset == dataset].convention.unique())} "
                         "in one table; run each convention as its own config (its own `name`)")
    return frame.sort_values([*GROUP, "seed", "metric"]).reset_index(drop=True)


def measured(values: pd.Series) -> pd.Series:
    """Accuracies to the precision they were measured with: svar.evaluate counts in float32, so a
    top-1 of 0.2 arrives as 0.20000000298023224 (float32's 0.2 read as a double). Each value
    becomes the shortest decimal that reads back as the same float32 (0.2); digits beyond float32's
    are noise, and so are those of a mean or std of such values. NaN stays NaN."""
    # numpy's str of a float32 is its shortest round-trip form; pandas' map would box it as a double
    return pd.Series([float(str(v)) for v in values.to_numpy(dtype=np.float32)], index=values.index, dtype="float64")


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean and (sample) standard deviation over seeds; the std of one seed is missing (NaN), not
    0, and so is every statistic of a metric that is missing. Values, means and stds are taken to
    float32's precision (measured): the long table (metrics.csv) keeps the values as the runs wrote them."""
    metrics = with_teacher(metrics)
    group = [*GROUP, *(["shots"] if "shots" in metrics.columns else [])]  # K beside the fraction it amounts to
    grouped = metrics.assign(value=measured(metrics["value"])).groupby([*group, "metric"], sort=True,
                                                                        dropna=False)["value"]
    summary = grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()
    return summary.assign(mean=measured(summary["mean"]), std=measured(summary["std"]))


def cell_text(mean: float, std: float, fmt: str = "{:.1f}", pm: str = " ± ") -> str:
    """mean ± std in % as printed; the mean alone for one seed, "–" for a missing metric."""
    if mean != mean:
        return "–"
    text = fmt.format(100 * mean)
    return text if std != std else text + pm + fmt.format(100 * std)


def format_summary(summary: pd.DataFrame) -> str:
    """The summary as a readable table: mean ± std (%) per method and fraction."""
    frame = with_teacher(summary)
    frame = frame.assign(value=[cell_text(m, s) for m, s in zip(frame["mean"], frame["std"])])
    index = GROUP if several_teachers(frame) else [key for key in GROUP if key != "teacher"]
    table = frame.pivot_table(index=index, columns="metric", values="value", aggfunc="first")
    return table[[m for m in METRICS if m in table.columns]].to_string()


def summary_metrics(summary: pd.DataFrame) -> dict:
    """The summary as nested JSON for `dvc metrics show`: dataset → method → fraction → metric
    (dataset → teacher → method ... when it holds several teachers' runs)."""
    nested: dict = {}
    summary = with_teacher(summary)
    several = several_teachers(summary)
    for row in summary.itertuples():
        top = nested.setdefault(row.dataset, {})
        if several:
            top = top.setdefault(row.teacher, {})
        cell = top.setdefault(row.method, {}).setdefault(f"{row.fraction:g}", {})
        # JSON has no NaN: a missing statistic is null
        cell[row.metric] = None if row.mean != row.mean else round(float(row.mean), 6)
        cell[f"{row.metric}_std"] = None if row.std != row.std else round(float(row.std), 6)
    return nested


def top1_by_fraction(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean top-1 per fraction, one column per method (dataset-method when several datasets):
    the per-fraction accuracies `dvc plots` draws."""
    top1 = with_teacher(summary[summary["metric"] == "top1"])
    column = top1["method"]
    if several_teachers(top1):
        column = column + " (" + top1["teacher"] + ")"
    if top1["dataset"].nunique() > 1:
        column = top1["dataset"] + "-" + column
    wide = top1.assign(column=column).pivot(index="fraction", columns="column", values="mean")
    return wide.reset_index().rename_axis(columns=None)


# stored and recomputed accuracies agree to float32's precision: svar.evaluate counts in float32
AGREE = 1e-6
REMAKE = "delete it and rerun `snakemake` (rule evaluate makes it again)"


def recomputed(run: dict, path) -> dict:
    """top1 and mean_class of a run from its own predictions (test_predictions against
    test_labels, which svar.evaluate stores beside them)."""
    labels, predictions = run.get("test_labels"), run.get("test_predictions")
    if not isinstance(labels, list) or not isinstance(predictions, list) or len(labels) != len(predictions):
        raise ValueError(f"{path}: holds no test predictions and labels of one length (test_predictions, "
                         f"test_labels) to check its accuracies against; it was not written by svar evaluate, or "
                         f"was edited since: {REMAKE}")
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if not len(labels):
        return {"top1": float("nan"), "mean_class": float("nan")}
    right = predictions == labels
    return {"top1": float(right.mean()),
            "mean_class": float(np.mean([right[labels == c].mean() for c in np.unique(labels)]))}


def run_key(run: dict) -> tuple:
    """What a run is, from its own contents: another path holding the same run is the same run."""
    return (run["dataset"], teacher_label(run), run["method"], float(run["fraction"]), int(run["seed"]))


def check_runs(metric_files) -> None:
    """Each run once (by its path, and by dataset, teacher, method, fraction and seed from its
    contents), and each run's top1 and mean_class those its own predictions give: a metrics.json
    edited or damaged after svar evaluate wrote it is refused, naming the file and both values."""
    seen_paths: dict = {}
    seen_runs: dict = {}
    for path in metric_files:
        where = Path(path).resolve()
        if where in seen_paths:
            raise ValueError(f"{path}: given twice; give each run's metrics.json once (a run counted twice "
                             "would be two seeds)")
        seen_paths[where] = path
        run = read_json(path, "run's metrics", "evaluate")
        key = run_key(run)
        if key in seen_runs:
            dataset, teacher, method, fraction, seed = key
            raise ValueError(f"{seen_runs[key]} and {path}: the same run (dataset {dataset}, teacher {teacher}, "
                             f"method {method}, fraction {fraction:g}, seed {seed}) twice; give each run once")
        seen_runs[key] = path
        again = recomputed(run, path)
        for metric, value in again.items():
            stored = run.get(metric)
            stored = float("nan") if stored is None else float(stored)
            if not (stored == value or abs(stored - value) <= AGREE or (stored != stored and value != value)):
                videos = counted(len(run["test_labels"]), "test video")
                raise ValueError(f"{path}: {metric} = {stored:g}, but its own predictions ({videos}) give {value:g}; "
                                 f"the file was edited or damaged after svar evaluate wrote it: {REMAKE}")


def aggregate(metric_files, metrics_out, summary_out, summary_json_out=None, top1_csv_out=None) -> pd.DataFrame:
    """The tables of runs that are each themselves (check_runs) and each given once."""
    metrics = collect(metric_files)
    check_runs(metric_files)
    summary = summarise(metrics)
    write_csv(metrics_out, metrics)
    write_csv(summary_out, summary)
    if summary_json_out:
        write_json(summary_json_out, summary_metrics(summary))
    if top1_csv_out:
        write_csv(top1_csv_out, top1_by_fraction(summary))
    random = [f for f in metric_files if read_json(f, "run's metrics", "evaluate").get("teacher_random_weights")]
    if random:
        log.warning("%d of %s used a teacher with RANDOM weights", len(random), counted(len(metric_files), "run"))
    print(format_summary(summary))
    return summary
