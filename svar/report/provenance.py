"""The runs a report is made from and what made each number: the runs' metrics.json matched
against metrics.csv, the provenance gathered from all of them (teacher and its weights, student,
method options, split convention, decoders, commit), and the run whose per-class accuracy and
confusion matrix the report shows."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..aggregate import teacher_label, with_teacher
from ..readers import read_json
from ..wording import counted
from .tables import distinct

RANDOM_TEACHER_WARNING = ("TEACHER WEIGHTS ARE RANDOM in {n} of {total}: "
                          "these numbers do not measure the methods")


def load_runs(run_files, metrics: pd.DataFrame) -> list[dict]:
    """The runs' metrics.json files (each with its folder, where its train_curve.csv lies).

    Every run metrics.csv lists must be among them, matched on (dataset, method, fraction, seed)
    read from the JSON, not from folder names; a file metrics.csv does not list is an error too:
    the tables and the figures come from the same runs.
    """
    key = lambda d, t, m, f, s: (d, t, m, round(float(f), 9), int(s))  # noqa: E731
    metrics = with_teacher(metrics)
    recorded = "unrecorded" not in set(metrics["teacher"])  # a table older than the teacher axis: matched without
    wanted = {key(d, t if recorded else "", m, f, s)
              for d, t, m, f, s in metrics[["dataset", "teacher", "method", "fraction", "seed"]].itertuples(index=False)}
    runs, seen = [], set()
    for path in map(Path, run_files):
        run = read_json(path, "run's metrics", "evaluate")
        teacher = teacher_label(run)
        k = key(run["dataset"], teacher if recorded else "", run["method"], run["fraction"], run["seed"])
        if k not in wanted:
            raise ValueError(f"{path}: the run {k[2]} / {k[3]:g} / seed {k[4]} is not in the metrics table")
        seen.add(k)
        runs.append({**run, "teacher": teacher, "dir": path.parent})
    if seen != wanted:
        d, _, m, f, s = sorted(wanted - seen)[0]
        raise ValueError(f"the metrics table lists runs with no metrics.json given, e.g. {m} / {f:g} / seed {s}")
    return runs


def _student_text(provenance: dict) -> str:
    """The student and how it was initialised: `r3d_18 (scratch)`, `r3d_18 (kinetics400: …)`."""
    init = provenance.get("student_init")
    return f"{provenance['student']} ({init})" if init else provenance["student"]


def collect_provenance(runs: list[dict]) -> dict:
    """What produced the numbers, gathered from every run; each field lists the distinct values
    seen, so that a report mixing teachers, commits or split conventions shows it."""
    random_runs = [r for r in runs if r.get("teacher_random_weights")]
    methods = sorted({r["method"] for r in runs})
    accuracy_of = distinct(r.get("accuracy_of", "unknown") for r in runs)
    provenance = {
        "runs": len(runs),
        "teacher_model": distinct(r["provenance"]["teacher_model"] for r in runs),
        "teacher_weights": distinct("RANDOM" if r.get("teacher_random_weights") else r["provenance"]["teacher_weights"]
                                     for r in runs),
        "teacher_random_weights": bool(random_runs),
        "runs_with_random_teacher": len(random_runs),
        "student": {m: distinct(_student_text(r["provenance"]) for r in runs if r["method"] == m) for m in methods},
        "method_config": {m: distinct(r["provenance"]["options"] for r in runs if r["method"] == m)
                          for m in methods},
        # how each method's models were scored (None: a teacher-only head, scored on stored features)
        "evaluation": {m: distinct(r["provenance"].get("evaluate") for r in runs if r["method"] == m)
                       for m in methods},
        "split_convention": distinct(r["provenance"]["split_convention"] for r in runs),
        # where the labeled lists came from and what the seeds vary (svar.splits.split_info)
        "list_source": distinct((r.get("split") or {}).get("list_source", "unrecorded") for r in runs
                                 if not (r.get("split") or {}).get("list_source", "").startswith("drawn with seed"))
        or ["drawn with each run's seed"],
        "seed_varies": distinct((r.get("split") or {}).get("seed_varies", "unrecorded") for r in runs),
        # what a student saw of each video, and the test views averaged
        "clips": {m: distinct(r["provenance"].get("clips") for r in runs if r["method"] == m) for m in methods},
        "views": {m: distinct(r["provenance"].get("views", "unrecorded") for r in runs if r["method"] == m)
                  for m in methods},
        "decoders": distinct(r["provenance"]["decoders"] for r in runs),
        "git_commit": distinct(r["provenance"]["git_commit"] for r in runs),
        # True where a run's code had uncommitted changes: its commit alone does not reproduce it
        "git_dirty": distinct(r["provenance"].get("git_dirty") for r in runs),
        "accuracy_of": accuracy_of,
        "final_model_accuracy": all(str(a).startswith("final model") for a in accuracy_of),
    }
    if random_runs:
        provenance["WARNING"] = RANDOM_TEACHER_WARNING.format(n=len(random_runs), total=counted(len(runs), "run"))
    return provenance


def choose_run(metrics: pd.DataFrame, run: str | None = None) -> tuple[str, str, float, int]:
    """(dataset, method, fraction, seed) of the run whose per-class accuracy and confusion to show.

    Default: the method with the best mean top-1 at the smallest label fraction (where methods
    differ most), its lowest seed (seed 0 in a default run), in the first dataset. `run` is
    "method/fraction/seed", or "dataset/method/fraction/seed" when metrics.csv holds several
    datasets.
    """
    datasets = sorted(metrics["dataset"].unique())
    if run:
        parts = run.split("/")
        if len(parts) == 3 and len(datasets) == 1:
            parts = [datasets[0], *parts]
        if len(parts) != 4:
            raise ValueError(f"run must be 'method/fraction/seed' (or 'dataset/method/fraction/seed' with "
                             f"several datasets: {datasets}), got {run!r}")
        dataset, method, fraction, seed = parts[0], parts[1], float(parts[2]), int(parts[3])
        match = metrics[(metrics["dataset"] == dataset) & (metrics["method"] == method)
                        & (metrics["fraction"].sub(fraction).abs() < 1e-9) & (metrics["seed"] == seed)]
        if match.empty:
            raise ValueError(f"run {run!r} is not in metrics.csv")
        return dataset, method, fraction, seed
    top1 = metrics[(metrics["metric"] == "top1") & (metrics["dataset"] == datasets[0])]
    smallest = top1[top1["fraction"] == top1["fraction"].min()]
    method = smallest.groupby("method")["value"].mean().idxmax()
    seed = int(smallest[smallest["method"] == method]["seed"].min())
    return datasets[0], method, float(smallest["fraction"].iloc[0]), seed


def find_run(runs: list[dict], dataset: str, method: str, fraction: float, seed: int) -> dict:
    for run in runs:
        if (run["dataset"], run["method"], int(run["seed"])) == (dataset, method, seed) \
                and math.isclose(float(run["fraction"]), fraction):
            return run
    raise FileNotFoundError(f"no metrics.json for {dataset}/{method}/{fraction}/{seed}")
