"""Results a paper would print: tables, figures, provenance and one offline HTML page.

`make_report` turns a finished benchmark (metrics.csv plus the runs' metrics.json and
train_curve.csv) into what goes into a paper or a review:

- the summary table (mean ± std over seeds of top-1, top-5 and mean-class accuracy, in %)
  as CSV, Markdown and LaTeX (booktabs): methods as rows, one column group per label fraction,
  and under it the settings its runs were trained and scored with, read from their metrics.json;
- under each, paired t-tests over seeds of top-1 against supervised and against the best other
  method (svar.significance), with their 95% intervals in significance.csv;
- the figures of the registry `figures.FIGURES`: top-1 against label fraction beside published
  numbers, per-class accuracy and confusion matrix of one run, training curves, pseudo-label
  diagnostics, per-class gains against the teacher;
- the provenance of every number: teacher and its weights (random weights flagged loudly),
  student, method configuration, split convention, decoders, git commit, and that the
  accuracy is the final model's;
- report.html, which embeds all of the above (images as data URIs) and so opens offline.

One module per job:

  published   published results (svar/data/published_results.csv), validated against their schema
  protocol    our runs' protocols in the published table's words, and each published row's differences
  provenance  the runs a report reads, matched to metrics.csv, and what made each number
  tables      the summary and significance tables: CSV, Markdown, LaTeX
  analysis    the per-class analysis (per_class_analysis.csv), which two figures draw
  figures     every figure, registered once (FIGURES); plotting: what they share
  page        report.html
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..aggregate import summarise
from ..atomic import write_csv, write_json, write_text
from ..costs import cost_markdown, cost_table, read_benchmarks
from ..readers import read_csv
from ..significance import significance_table
from .analysis import per_class_analysis
from .figures import FIGURES, FigureInputs, run_title
from .page import to_html
from .provenance import choose_run, collect_provenance, find_run, load_runs
from .published import comparable_published, load_published
from .tables import paper_tables, summary_frame, to_latex, to_markdown

log = logging.getLogger(__name__)


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
    runs = load_runs(run_files, metrics)
    # only published numbers under a split convention comparable with our runs' are drawn beside them
    published = comparable_published(load_published(published_csv), metrics, runs)
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
        ("significance_csv", "significance.csv"), ("per_class_analysis", "per_class_analysis.csv"),
        ("provenance", "provenance.json"), ("html", "report.html")]}
    paths |= {figure.key: out_dir / figure.file for _, figure in FIGURES.items()}
    write_csv(paths["summary_csv"], summary_frame(summary))
    write_csv(paths["significance_csv"], significance)
    write_text(paths["summary_md"], to_markdown(tables, published, warning, significance))
    write_text(paths["summary_tex"], to_latex(tables, warning, significance, published))
    analysis = per_class_analysis(runs)
    write_csv(paths["per_class_analysis"], analysis.round(4))
    write_json(paths["provenance"], {**provenance, "per_class_and_confusion_run": chosen})
    inputs = FigureInputs(metrics, published, runs, analysis, chosen, chosen_run)
    # (caption, file) of each figure, as the page shows them
    figures = [(figure.make(inputs, paths[figure.key]), paths[figure.key]) for _, figure in FIGURES.items()]
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
