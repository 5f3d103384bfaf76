"""Results a paper would print: tables, figures, provenance and one offline HTML page.

`make_report` turns a finished benchmark (metrics.csv plus the runs' metrics.json and
train_curve.csv) into what goes into a paper or a review:

- the summary table (mean ± std over seeds of top-1, top-5 and mean-class accuracy, in %)
  as CSV, Markdown and LaTeX (booktabs): methods as rows, one column group per label fraction,
  and under it the settings its runs were trained and scored with, read from their metrics.json;
- under each, paired t-tests over seeds of top-1 against supervised and against the best other
  method (svar.significance), with their 95% intervals in significance.csv;
- top-1 against label fraction (log axis, one line per method, a band of ± one sd over seeds),
  with published numbers for the same dataset drawn beside ours, hollow and dashed;
- per-class accuracy and the confusion matrix of one run;
- training curves (mean over seeds per method, one fraction);
- the provenance of every number: teacher and its weights (random weights flagged loudly),
  student, method configuration, split convention, decoders, git commit, and that the
  accuracy is the final model's;
- report.html, which embeds all of the above (images as data URIs) and so opens offline.

Published numbers come from `svar/data/published_results.csv`, validated row by row against
`published_results.schema.json`, so a row without a source or a split convention never
reaches a figure. The tables are svar.report_tables', the figures svar.report_figures' and the
page svar.report_html's; this module reads the runs and writes every file.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from ..aggregate import summarise, teacher_label, with_teacher
from ..atomic import write_csv, write_json, write_text
from ..costs import cost_markdown, cost_table, read_benchmarks
from ..readers import read_csv, read_json
from .figures import (BASELINE_METHOD, per_class_analysis, plot_accuracy_vs_fraction, plot_confusion,
                             plot_gain_vs_teacher, plot_per_class, plot_per_class_pseudo_labels, plot_pseudo_labels,
                             plot_training_curves, run_title)
from .page import to_html
from .tables import distinct, fraction_label, paper_tables, summary_frame, to_latex, to_markdown
from ..significance import significance_table
from ..wording import counted

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
PUBLISHED_CSV = DATA_DIR / "published_results.csv"
PUBLISHED_SCHEMA = DATA_DIR / "published_results.schema.json"

RANDOM_TEACHER_WARNING = ("TEACHER WEIGHTS ARE RANDOM in {n} of {total}: "
                          "these numbers do not measure the methods")


class PublishedResultsError(ValueError):
    """The published-results table breaks its schema; the message names each bad row and field."""


# --------------------------------------------------------------------------- published results


def load_published(path=None) -> pd.DataFrame:
    """The published-results table, every row validated against its JSON Schema.

    Cells are read as text and converted to the type the schema asks for, so that a value that
    does not convert is reported by the schema (with its row and field) rather than silently
    becoming NaN. Empty cells count as missing fields.
    """
    from jsonschema import Draft202012Validator

    path = Path(path) if path else PUBLISHED_CSV
    schema = json.loads(PUBLISHED_SCHEMA.read_text())
    validator = Draft202012Validator(schema)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    types = {name: spec.get("type") for name, spec in schema["properties"].items()}
    records, problems = [], []
    for number, row in enumerate(raw.to_dict("records"), 1):
        record = {field: _convert(value.strip(), types.get(field)) for field, value in row.items() if value.strip()}
        for error in sorted(validator.iter_errors(record), key=lambda e: list(e.path)):
            problems.append(f"row {number} (line {number + 1}), field {_error_field(error, record)!r}: "
                            f"{error.message}")
        records.append(record)
    if problems:
        raise PublishedResultsError(f"{path}: {counted(len(problems), 'problem')}\n  " + "\n  ".join(problems))
    return pd.DataFrame(records, columns=list(schema["properties"]))


def _convert(text: str, json_type: str | None):
    try:
        if json_type == "integer":
            return int(text)
        if json_type == "number":
            return float(text)
    except ValueError:
        pass
    return text


def _error_field(error, record: dict) -> str:
    if error.path:
        return str(error.path[0])
    if error.validator == "required":
        return next(f for f in error.validator_value if f not in record and repr(f) in error.message)
    if error.validator == "additionalProperties":
        return ", ".join(f for f in record if f not in error.schema["properties"])
    return "(row)"


# --------------------------------------------------------------------------- runs and provenance


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


def comparable_published(published: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """The published rows that may be drawn beside our runs: the same dataset and a comparable
    split convention (svar.splits.COMPARABLE_WITH: the same lists, or the same rule over the same
    pool). A zero-shot number (no labels) depends on no split and is kept."""
    from ..splits import COMPARABLE_WITH

    keep = pd.Series(False, index=published.index)
    for dataset, rows in metrics.groupby("dataset"):
        conventions = set(rows["convention"]) if "convention" in rows.columns else set()
        comparable = {COMPARABLE_WITH[c] for c in conventions if c in COMPARABLE_WITH}
        keep |= (published["dataset"] == dataset) & (published["split_convention"].isin(comparable)
                                                     | (published["label_fraction"] == 0))
    return published[keep]



# --------------------------------------------------------------------------- the report


def make_report(metrics_csv, run_files, out_dir, published_csv=None, run=None, benchmarks_dir=None,
                plan_csv=None) -> dict[str, Path]:
    """Write the report into out_dir and return {name: path} of every file written.

    metrics_csv is `svar aggregate`'s long table (the numbers in the tables and the accuracy
    plot); run_files are the runs' metrics.json, each with its train_curve.csv beside it (per-class,
    confusion, curves, provenance). published_csv replaces the packaged published-results table; run
    ("method/fraction/seed") picks the run for the per-class and confusion figures; benchmarks_dir,
    the folder of the jobs' Snakemake benchmark files, adds the cost table (cost.csv, cost.md and
    a section of the page; svar.costs). significance.csv holds the paired tests of top-1 over seeds
    (svar.significance) that the tables print under each summary. Every
    file is written atomically, so an interrupted report never leaves a truncated file that a
    workflow would take as finished.
    """
    out_dir = Path(out_dir)
    # one metrics table per teacher (svar aggregate of each teacher's runs), side by side
    metrics = pd.concat([read_csv(path, "metrics table", "aggregate", keep_default_na=True)
                         for path in ([metrics_csv] if isinstance(metrics_csv, (str, Path)) else metrics_csv)],
                        ignore_index=True)
    summary = summarise(metrics)
    # only published numbers under a split convention comparable with our runs' are drawn beside them
    published = comparable_published(load_published(published_csv), metrics)
    runs = load_runs(run_files, metrics)
    provenance = collect_provenance(runs)
    warning = provenance.get("WARNING")
    if warning:
        log.warning(warning)
    tables = paper_tables(summary, metrics, runs)
    significance = significance_table(metrics)
    dataset, method, fraction, seed = choose_run(metrics, run)
    chosen_run = find_run(runs, dataset, method, fraction, seed)
    chosen = {"dataset": dataset, "method": method, "fraction": fraction, "seed": seed, "title": run_title(chosen_run)}

    paths = {name: out_dir / filename for name, filename in [
        ("summary_csv", "summary.csv"), ("summary_md", "summary.md"), ("summary_tex", "summary.tex"),
        ("significance_csv", "significance.csv"),
        ("accuracy_plot", "accuracy_vs_fraction.png"), ("per_class_plot", "per_class.png"),
        ("confusion_plot", "confusion.png"), ("training_curves_plot", "training_curves.png"),
        ("provenance", "provenance.json"), ("html", "report.html"), ("per_class_analysis", "per_class_analysis.csv"),
        ("pseudo_labels_plot", "pseudo_labels.png"), ("pseudo_labels_per_class_plot", "pseudo_labels_per_class.png"),
        ("gain_vs_teacher_plot", "gain_vs_teacher.png")]}
    write_csv(paths["summary_csv"], summary_frame(summary))
    write_csv(paths["significance_csv"], significance)
    write_text(paths["summary_md"], to_markdown(tables, published, warning, significance))
    write_text(paths["summary_tex"], to_latex(tables, warning, significance))
    plot_accuracy_vs_fraction(metrics, published, paths["accuracy_plot"])
    plot_per_class(chosen_run, paths["per_class_plot"])
    plot_confusion(chosen_run, paths["confusion_plot"])
    curve_methods = plot_training_curves(runs, dataset, fraction, paths["training_curves_plot"])
    analysis = per_class_analysis(runs)
    write_csv(paths["per_class_analysis"], analysis.round(4))
    pseudo_methods = plot_pseudo_labels(runs, dataset, paths["pseudo_labels_plot"])
    plot_per_class_pseudo_labels(analysis, dataset, paths["pseudo_labels_per_class_plot"])
    plot_gain_vs_teacher(analysis, dataset, paths["gain_vs_teacher_plot"])
    write_json(paths["provenance"], {**provenance, "per_class_and_confusion_run": chosen})
    figures = [
        ("Top-1 against labeled fraction: ours (solid, ± sd over seeds) and published results for the same "
         "dataset under a comparable split convention (hollow, dashed; dotted: zero-shot). The markers at one "
         "fraction stand side by side around its tick, so that tied methods stay visible", paths["accuracy_plot"]),
        (f"Per-class accuracy: {chosen['title']}", paths["per_class_plot"]),
        (f"Confusion matrix: {chosen['title']}", paths["confusion_plot"]),
        (f"Training curves at {fraction_label(fraction)} labels, mean ± sd over seeds "
         f"({', '.join(curve_methods) or 'none: teacher-only runs have no curve'})", paths["training_curves_plot"]),
        ("Pseudo-labels used in training: their accuracy against the unlabeled videos' true labels (which no loss "
         f"reads) and their coverage, per labeled fraction ({', '.join(pseudo_methods) or 'no method uses any'})",
         paths["pseudo_labels_plot"]),
        ("Per class: accuracy of the pseudo-labels each method trained on against the teacher's zero-shot test "
         "accuracy of the class (lowest labeled fraction; the methods' markers of one class side by side)",
         paths["pseudo_labels_per_class_plot"]),
        (f"Per class: test accuracy gain over {BASELINE_METHOD} against the teacher's zero-shot accuracy of the "
         "class (lowest labeled fraction; per_class_analysis.csv holds every fraction; the methods' markers of one "
         "class side by side)", paths["gain_vs_teacher_plot"]),
    ]
    costs = None
    if benchmarks_dir is not None:
        plan = read_csv(plan_csv, "plan", "plan") if plan_csv else None
        costs = cost_table(read_benchmarks(benchmarks_dir), plan)
        paths |= {"cost_csv": out_dir / "cost.csv", "cost_md": out_dir / "cost.md"}
        write_csv(paths["cost_csv"], costs)
        write_text(paths["cost_md"], cost_markdown(costs))
    write_text(paths["html"], to_html(tables, published, provenance, figures, chosen, costs, significance))
    return paths


def main_report(metrics_csv, run_files, out_dir, published_csv=None, run=None, benchmarks_dir=None,
                plan_csv=None) -> int:
    """`svar report`: write the report, list what was written, exit status 0."""
    from ..receipts import record

    paths = make_report(metrics_csv, run_files, out_dir, published_csv, run, benchmarks_dir, plan_csv)
    for name, path in paths.items():
        record(path)  # what `svar verify` and the workflow's check before a run compare it with
        print(f"{name:22s} {path}")
    return 0
