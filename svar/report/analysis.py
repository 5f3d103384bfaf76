"""The per-class analysis (per_class_analysis.csv, and what two of the figures draw): per dataset,
teacher, fraction, method and class, the method's gain over `supervised` beside the teacher's
zero-shot accuracy of the class and the pseudo-labels the method trained on."""

from __future__ import annotations

import math

import pandas as pd

from ..readers import read_csv

# the teacher-only baseline whose per-class accuracy is "the teacher's" in the analyses
TEACHER_METHOD = "clip_zeroshot"
BASELINE_METHOD = "supervised"


def _runs_at(runs: list[dict], dataset: str):
    return [r for r in runs if r["dataset"] == dataset]


def _per_class_mean(runs: list[dict], method: str, fraction: float | None) -> pd.Series:
    """A method's test accuracy per class (index: class name), mean over seeds; at `fraction`, or
    over every fraction when None (the zero-shot teacher uses no label: the same at each)."""
    rows = [r["per_class"] for r in runs if r["method"] == method
            and (fraction is None or math.isclose(float(r["fraction"]), fraction))]
    return pd.DataFrame(rows).mean() if rows else pd.Series(dtype=float)


def per_class_analysis(runs: list[dict]) -> pd.DataFrame:
    """One row per dataset, teacher, fraction, method and class: the teacher's zero-shot test accuracy of
    the class (clip_zeroshot, mean over seeds), the method's and `supervised`'s (mean over seeds),
    the gain (method − supervised, points), and the accuracy and coverage of the pseudo-labels the
    method trained on for the class's unlabeled videos (each run's pseudo_labels.csv, pooled over
    seeds; empty for a method that uses none). In %. Empty without clip_zeroshot or supervised."""
    rows = []
    for dataset, teacher_name in sorted({(r["dataset"], r["teacher"]) for r in runs}):
        at = [r for r in _runs_at(runs, dataset) if r["teacher"] == teacher_name]
        teacher = _per_class_mean(at, TEACHER_METHOD, None)
        if teacher.empty:
            continue
        for fraction in sorted({float(r["fraction"]) for r in at}):
            base = _per_class_mean(at, BASELINE_METHOD, fraction)
            for method in sorted({r["method"] for r in at} - {TEACHER_METHOD, BASELINE_METHOD}):
                acc = _per_class_mean(at, method, fraction)
                if acc.empty or base.empty:
                    continue
                pseudo = _pooled_pseudo_labels([r for r in at if r["method"] == method
                                                and math.isclose(float(r["fraction"]), fraction)])
                for name in acc.index:
                    row = pseudo.loc[name] if name in pseudo.index else None
                    rows.append({"dataset": dataset, "teacher": teacher_name, "fraction": fraction, "method": method,
                                 "class": name,
                                 "teacher_zeroshot": 100 * teacher.get(name, float("nan")),
                                 "accuracy": 100 * acc[name], "supervised": 100 * base.get(name, float("nan")),
                                 "gain": 100 * (acc[name] - base.get(name, float("nan"))),
                                 "pseudo_label_accuracy": 100 * row["accuracy"] if row is not None else float("nan"),
                                 "pseudo_label_coverage": 100 * row["coverage"] if row is not None else float("nan")})
    return pd.DataFrame(rows, columns=["dataset", "teacher", "fraction", "method", "class", "teacher_zeroshot",
                                       "accuracy",
                                       "supervised", "gain", "pseudo_label_accuracy", "pseudo_label_coverage"])


def _pooled_pseudo_labels(runs: list[dict]) -> pd.DataFrame:
    """Seen, used and correct pseudo-labels per true class summed over runs (their
    pseudo_labels.csv beside metrics.json), with coverage and accuracy; empty when none used any."""
    tables = []
    for run in runs:
        path = run["dir"] / "pseudo_labels.csv"
        if path.exists():
            table = read_csv(path, "pseudo-label diagnostics", "train")
            if not table.empty:
                tables.append(table)
    if not tables:
        return pd.DataFrame(columns=["seen", "used", "correct", "coverage", "accuracy"])
    pooled = pd.concat(tables).groupby("class")[["seen", "used", "correct"]].sum()
    pooled["coverage"] = pooled["used"] / pooled["seen"].where(pooled["seen"] > 0)
    pooled["accuracy"] = pooled["correct"] / pooled["used"].where(pooled["used"] > 0)
    return pooled
