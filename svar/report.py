"""Results a paper would print: tables, figures, provenance and one offline HTML page.

`make_report` turns a finished benchmark (metrics.csv plus the runs' metrics.json and
train_curve.csv) into what goes into a paper or a review:

- the summary table (mean ± std over seeds of top-1, top-5 and mean-class accuracy, in %)
  as CSV, Markdown and LaTeX (booktabs): methods as rows, one column group per label fraction;
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
reaches a figure.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .aggregate import GROUP, METRICS, cell_text, several_teachers, summarise, teacher_label, with_teacher
from .atomic import atomic_path, write_csv, write_json, write_text
from .costs import SHOWN as COST_COLUMNS, cost_cells, cost_markdown, cost_table, read_benchmarks
from .readers import read_csv, read_json
from .significance import AGAINST_BASELINE, AGAINST_BEST, significance_cell, significance_table

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
PUBLISHED_CSV = DATA_DIR / "published_results.csv"
PUBLISHED_SCHEMA = DATA_DIR / "published_results.schema.json"

METRIC_LABELS = {"top1": "Top-1", "top5": "Top-5", "mean_class": "Mean-class"}
RANDOM_TEACHER_WARNING = ("TEACHER WEIGHTS ARE RANDOM in {n} of {total} runs: "
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
        raise PublishedResultsError(f"{path}: {len(problems)} problem(s)\n  " + "\n  ".join(problems))
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
    accuracy_of = _distinct(r.get("accuracy_of", "unknown") for r in runs)
    provenance = {
        "runs": len(runs),
        "teacher_model": _distinct(r["provenance"]["teacher_model"] for r in runs),
        "teacher_weights": _distinct("RANDOM" if r.get("teacher_random_weights") else r["provenance"]["teacher_weights"]
                                     for r in runs),
        "teacher_random_weights": bool(random_runs),
        "runs_with_random_teacher": len(random_runs),
        "student": {m: _distinct(_student_text(r["provenance"]) for r in runs if r["method"] == m) for m in methods},
        "method_config": {m: _distinct(r["provenance"]["options"] for r in runs if r["method"] == m)
                          for m in methods},
        # how each method's models were scored (None: a teacher-only head, scored on stored features)
        "evaluation": {m: _distinct(r["provenance"].get("evaluate") for r in runs if r["method"] == m)
                       for m in methods},
        "split_convention": _distinct(r["provenance"]["split_convention"] for r in runs),
        # where the labeled lists came from and what the seeds vary (svar.splits.split_info)
        "list_source": _distinct((r.get("split") or {}).get("list_source", "unrecorded") for r in runs
                                 if not (r.get("split") or {}).get("list_source", "").startswith("drawn with seed"))
        or ["drawn with each run's seed"],
        "seed_varies": _distinct((r.get("split") or {}).get("seed_varies", "unrecorded") for r in runs),
        # what a student saw of each video, and the test views averaged
        "clips": {m: _distinct(r["provenance"].get("clips") for r in runs if r["method"] == m) for m in methods},
        "views": {m: _distinct(r["provenance"].get("views", "unrecorded") for r in runs if r["method"] == m)
                  for m in methods},
        "decoders": _distinct(r["provenance"]["decoders"] for r in runs),
        "git_commit": _distinct(r["provenance"]["git_commit"] for r in runs),
        # True where a run's code had uncommitted changes: its commit alone does not reproduce it
        "git_dirty": _distinct(r["provenance"].get("git_dirty") for r in runs),
        "accuracy_of": accuracy_of,
        "final_model_accuracy": all(str(a).startswith("final model") for a in accuracy_of),
    }
    if random_runs:
        provenance["WARNING"] = RANDOM_TEACHER_WARNING.format(n=len(random_runs), total=len(runs))
    return provenance


def _distinct(values) -> list:
    seen, out = set(), []
    for value in values:
        key = json.dumps(value, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


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


# --------------------------------------------------------------------------- the summary table


@dataclass
class PaperTable:
    """One dataset's summary in the layout a paper prints: methods as rows, one column group
    (top-1, top-5, mean-class) per label fraction; cells are (mean %, std %) or absent."""

    dataset: str
    methods: list[str]
    fractions: list[float]
    cells: dict  # (method, fraction, metric) -> (mean %, std %)
    best: dict  # (fraction, metric) -> best mean, rounded as printed
    seeds: list[int]  # distinct seed counts
    split: str = ""  # how the labeled videos were chosen (split_text)
    teacher: str = ""  # its runs' teacher (with_teacher's label)
    teacher_shown: bool = False  # the report sets several teachers side by side: its title names this one

    @property
    def title(self) -> str:
        return f"{self.dataset}, teacher {self.teacher}" if self.teacher_shown else self.dataset

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "-", self.title)

    def cell(self, method, fraction, metric):
        return self.cells.get((method, fraction, metric))

    def is_best(self, method, fraction, metric) -> bool:
        value = self.cell(method, fraction, metric)
        return value is not None and round(value[0], 1) == self.best[(fraction, metric)]


def split_text(metrics: pd.DataFrame, dataset: str) -> str:
    """One dataset's split convention, list source and what its seeds vary, as a table says it."""
    rows = metrics[metrics["dataset"] == dataset]
    if "convention" not in rows.columns:
        return "split convention unrecorded"
    sources = sorted(rows["list_source"].unique())
    source = sources[0] if len(sources) == 1 else f"{len(sources)} list sources (one per seed/fraction)"
    if all(s.startswith("drawn with seed") for s in sources):
        source = "labeled videos drawn with each run's seed"
    return (f"split convention {', '.join(sorted(rows['convention'].unique()))}; {source}; "
            f"the seed varies {', '.join(sorted(rows['seed_varies'].unique()))}")


def comparable_published(published: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """The published rows that may be drawn beside our runs: the same dataset and a comparable
    split convention (svar.splits.COMPARABLE_WITH: the same lists, or the same rule over the same
    pool). A zero-shot number (no labels) depends on no split and is kept."""
    from .splits import COMPARABLE_WITH

    keep = pd.Series(False, index=published.index)
    for dataset, rows in metrics.groupby("dataset"):
        conventions = set(rows["convention"]) if "convention" in rows.columns else set()
        comparable = {COMPARABLE_WITH[c] for c in conventions if c in COMPARABLE_WITH}
        keep |= (published["dataset"] == dataset) & (published["split_convention"].isin(comparable)
                                                     | (published["label_fraction"] == 0))
    return published[keep]


def paper_tables(summary: pd.DataFrame, metrics: pd.DataFrame | None = None) -> list[PaperTable]:
    """One table per dataset and teacher (config `teachers`: the teacher is a grid axis)."""
    tables = []
    summary = with_teacher(summary)
    shown = several_teachers(summary)
    for (dataset, teacher), rows in summary.groupby(["dataset", "teacher"], sort=True):
        # a missing metric (top-5 with 5 classes or fewer) has no cell; one seed has no std (NaN)
        cells = {(r.method, r.fraction, r.metric): (100 * r.mean, 100 * r.std) for r in rows.itertuples()
                 if r.mean == r.mean}
        fractions = sorted(rows["fraction"].unique())
        best = {(f, m): round(100 * rows[(rows["fraction"] == f) & (rows["metric"] == m)]["mean"].max(), 1)
                for f in fractions for m in METRICS}
        tables.append(PaperTable(dataset, sorted(rows["method"].unique()), fractions, cells, best,
                                 sorted(rows.loc[rows["n_seeds"] > 0, "n_seeds"].unique().tolist()),
                                 split_text(metrics, dataset) if metrics is not None else "", teacher, shown))
    return tables


def summary_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as one numeric row per dataset × method × fraction, in percent."""
    # pivot, not pivot_table: that drops a metric missing everywhere (top-5 with 5 classes or fewer)
    summary = with_teacher(summary)
    wide = summary.pivot(index=GROUP, columns="metric", values=["mean", "std"])
    out = pd.DataFrame(index=wide.index)
    for metric in METRICS:
        out[f"{metric}_mean"] = 100 * wide[("mean", metric)]
        out[f"{metric}_std"] = 100 * wide[("std", metric)]
    # a missing metric counts no seed: the seeds are those of the metrics that were scored
    out["n_seeds"] = summary.groupby(GROUP)["n_seeds"].max()
    return out.reset_index().round(4)


def fraction_label(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def seeds_text(table: PaperTable) -> str:
    low, high = table.seeds[0], table.seeds[-1]
    return f"{low}–{high}" if low != high else str(low)


def md_escape(text) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(tables: list[PaperTable], published: pd.DataFrame, warning: str | None,
                significance: pd.DataFrame | None = None) -> str:
    lines = ["# Summary: accuracy (%), mean ± std over seeds", ""]
    if warning:
        lines += [f"> **WARNING: {warning}**", ""]
    for table in tables:
        lines += [f"## {md_escape(table.title)} ({seeds_text(table)} seeds; final model, no test-set model selection)", ""]
        if table.split:
            lines += [f"{md_escape(table.split)}.", ""]
        header = ["Method"] + [f"{fraction_label(f)} {METRIC_LABELS[m]}" for f in table.fractions for m in METRICS]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
        for method in table.methods:
            cells = [_text_cell(table, method, f, m, "**{}**") for f in table.fractions for m in METRICS]
            lines.append("| " + " | ".join([md_escape(method), *cells]) + " |")
        lines.append("")
        lines += _markdown_significance(significance, table)
        rows = published[published["dataset"] == table.dataset]
        if not rows.empty:
            lines += [f"### Published results on {table.dataset} under a comparable split convention "
                      "(top-1 %, as printed; not run here)", "",
                      "| Method | Venue | Backbone | Pretraining | Split convention | Labels | Top-1 | Source |",
                      "|---|---|---|---|---|---:|---:|---|"]
            for r in rows.sort_values(["label_fraction", "method"]).itertuples():
                cells = [r.method, f"{r.venue} {r.year}", r.backbone, r.pretraining, r.split_convention,
                         fraction_label(r.label_fraction), f"{r.top1:.1f}", r.source]
                lines.append("| " + " | ".join(md_escape(c) for c in cells) + " |")
            lines.append("")
    return "\n".join(lines)


def _text_cell(table: PaperTable, method, fraction, metric, bold: str) -> str:
    value = table.cell(method, fraction, metric)
    if value is None:
        return "–"
    text = cell_text(value[0] / 100, value[1] / 100)
    return bold.format(text) if table.is_best(method, fraction, metric) else text


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(tables: list[PaperTable], warning: str | None, significance: pd.DataFrame | None = None) -> str:
    """One booktabs table per dataset; best mean per column in bold. Needs \\usepackage{booktabs}.
    With significance (svar.significance.significance_table), each is followed by its paired tests."""
    blocks = ["% generated by svar report; needs \\usepackage{booktabs}"]
    for table in tables:
        n = len(METRICS)
        caption = (f"Accuracy (\\%) on {latex_escape(table.title)}: mean $\\pm$ std over {seeds_text(table)} "
                   f"seeds, final model (no test-set model selection). Best mean per column in bold.")
        if table.split:
            caption += f" {latex_escape(table.split[0].upper() + table.split[1:])}."
        if warning:
            caption += f" \\textbf{{{latex_escape(warning)}.}}"
        groups = " & ".join(f"\\multicolumn{{{n}}}{{c}}{{{latex_escape(fraction_label(f))} labels}}"
                            for f in table.fractions)
        rules = " ".join(f"\\cmidrule(lr){{{2 + i * n}-{1 + (i + 1) * n}}}" for i in range(len(table.fractions)))
        metric_row = " & ".join(METRIC_LABELS[m] for _ in table.fractions for m in METRICS)
        lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{caption}}}",
                 f"\\label{{tab:{table.slug}}}",
                 "\\begin{tabular}{l" + ("c" * n) * len(table.fractions) + "}", "\\toprule",
                 f" & {groups} \\\\", rules, f"Method & {metric_row} \\\\", "\\midrule"]
        for method in table.methods:
            cells = [_latex_cell(table, method, f, m) for f in table.fractions for m in METRICS]
            lines.append(" & ".join([latex_escape(method), *cells]) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        blocks.append("\n".join(lines))
        tests = _latex_significance(significance, table)
        if tests:
            blocks.append(tests)
    return "\n\n".join(blocks) + "\n"


def _latex_cell(table: PaperTable, method, fraction, metric) -> str:
    value = table.cell(method, fraction, metric)
    if value is None:
        return "--"
    text = cell_text(value[0] / 100, value[1] / 100, pm=" \\pm ")
    return f"$\\mathbf{{{text}}}$" if table.is_best(method, fraction, metric) else f"${text}$"


# --------------------------------------------------------------------------- the significance tables

SIGNIFICANCE_NOTE = ("Paired t-test over seeds on top-1 (the same seed is the same labeled split for every "
                     "method), two-sided. Δ = the row's method minus the other, in percentage points; the best "
                     "other is the other method with the highest mean top-1 at that fraction, named in its cell. "
                     "95% intervals in significance.csv. p n/a: one shared seed, or the same difference at "
                     "every seed.")
SIGNIFICANCE_NOTE_LATEX = ("Paired $t$-test over seeds on top-1 (the same seed is the same labeled split for every "
                           "method), two-sided. $\\Delta$ = the row's method minus the other, in percentage points; "
                           "the best other is the other method with the highest mean top-1 at that fraction, named "
                           "in its cell. 95\\% intervals in significance.csv. $p$ n/a: one shared seed, or the same "
                           "difference at every seed.")
SIGNIFICANCE_HEADERS = {AGAINST_BASELINE: "Δ vs supervised (p)", AGAINST_BEST: "Δ vs best other (p)"}
SIGNIFICANCE_HEADERS_LATEX = {AGAINST_BASELINE: "$\\Delta$ vs supervised ($p$)",
                              AGAINST_BEST: "$\\Delta$ vs best other ($p$)"}


def significance_grid(significance: pd.DataFrame | None, table: PaperTable) -> tuple[list[str], list[float], dict]:
    """The paired tests of one summary table (its dataset and teacher) laid out as a table prints
    them: (methods, fractions, cells), cells keyed by (method, fraction, against). Empty when there
    is nothing to compare (no significance table, or supervised alone)."""
    if significance is None:
        return [], [], {}
    rows = significance[(significance["dataset"] == table.dataset) & (significance["teacher"] == table.teacher)]
    cells = {(r.method, r.fraction, r.against): r for r in rows.itertuples(index=False)}
    return sorted(rows["method"].unique()), sorted(rows["fraction"].unique()), cells


def _significance_text(cells: dict, method, fraction, against, latex: bool = False) -> str:
    """A cell's text; the best other's cell names that method. Plain text is left unescaped for
    the caller's format; LaTeX comes escaped."""
    row = cells.get((method, fraction, against))
    if row is None:
        return "--" if latex else "–"
    text = significance_cell(row.diff, row.p_value, row.n_pairs, latex=latex)
    if against == AGAINST_BASELINE:
        return text
    return f"{latex_escape(row.other) if latex else row.other}: {text}"


def _markdown_significance(significance: pd.DataFrame | None, table: PaperTable) -> list[str]:
    methods, fractions, cells = significance_grid(significance, table)
    if not methods:
        return []
    header = ["Method"] + [f"{fraction_label(f)} {SIGNIFICANCE_HEADERS[a]}" for f in fractions
                           for a in SIGNIFICANCE_HEADERS]
    lines = [f"### Paired tests on {md_escape(table.title)}: top-1 difference (points) against supervised and the best other",
             "", md_escape(SIGNIFICANCE_NOTE), "",
             "| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    for method in methods:
        row = [md_escape(_significance_text(cells, method, f, a)) for f in fractions for a in SIGNIFICANCE_HEADERS]
        lines.append("| " + " | ".join([md_escape(method), *row]) + " |")
    return lines + [""]


def _latex_significance(significance: pd.DataFrame | None, table: PaperTable) -> str:
    """The paired tests as a booktabs table of their own (one per summary table), or "" when none."""
    methods, fractions, cells = significance_grid(significance, table)
    if not methods:
        return ""
    n = len(SIGNIFICANCE_HEADERS)
    groups = " & ".join(f"\\multicolumn{{{n}}}{{c}}{{{latex_escape(fraction_label(f))} labels}}" for f in fractions)
    rules = " ".join(f"\\cmidrule(lr){{{2 + i * n}-{1 + (i + 1) * n}}}" for i in range(len(fractions)))
    heads = " & ".join(SIGNIFICANCE_HEADERS_LATEX[a] for _ in fractions for a in SIGNIFICANCE_HEADERS)
    lines = ["\\begin{table}[t]", "\\centering",
             f"\\caption{{Paired tests on {latex_escape(table.title)}. {SIGNIFICANCE_NOTE_LATEX}}}",
             f"\\label{{tab:{table.slug}-significance}}",
             "\\begin{tabular}{l" + "c" * n * len(fractions) + "}", "\\toprule",
             f" & {groups} \\\\", rules, f"Method & {heads} \\\\", "\\midrule"]
    for method in methods:
        row = [_significance_text(cells, method, f, a, latex=True) for f in fractions for a in SIGNIFICANCE_HEADERS]
        lines.append(" & ".join([latex_escape(method), *row]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines)


def _html_significance(significance: pd.DataFrame | None, table: PaperTable) -> str:
    methods, fractions, cells = significance_grid(significance, table)
    if not methods:
        return ""
    esc = html.escape
    n = len(SIGNIFICANCE_HEADERS)
    head1 = "".join(f'<th colspan="{n}" style="text-align:center">{esc(fraction_label(f))} labels</th>'
                    for f in fractions)
    head2 = "".join(f"<th>{esc(SIGNIFICANCE_HEADERS[a])}</th>" for _ in fractions for a in SIGNIFICANCE_HEADERS)
    body = "".join(f"<tr><td>{esc(method)}</td>"
                   + "".join(f"<td>{esc(_significance_text(cells, method, f, a))}</td>"
                             for f in fractions for a in SIGNIFICANCE_HEADERS) + "</tr>"
                   for method in methods)
    key = table.slug if table.teacher_shown else table.dataset
    return (f"<h4>Paired tests on {esc(table.title)}</h4>"
            f'<p class="note">{esc(SIGNIFICANCE_NOTE)}</p>'
            f'<table class="significance" id="significance-{esc(key)}"><thead><tr><th></th>{head1}</tr>'
            f"<tr><th>Method</th>{head2}</tr></thead><tbody>{body}</tbody></table>")


# --------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: Path) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def plot_accuracy_vs_fraction(metrics: pd.DataFrame, published: pd.DataFrame, out: Path) -> None:
    """Top-1 against label fraction: ours solid with filled markers and a ± sd band over seeds,
    published numbers for the same dataset hollow and dashed, labelled 'method (venue year)'.
    Zero-shot rows (no labels) cannot sit on a log axis and are drawn as dotted levels."""
    import seaborn as sns

    plt = _pyplot()
    top1 = with_teacher(metrics[metrics["metric"] == "top1"]).assign(top1=lambda d: 100 * d["value"])
    if several_teachers(top1):  # one line per method and teacher
        top1 = top1.assign(method=top1["method"] + " [" + top1["teacher"] + "]")
    datasets = sorted(top1["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(8.5 * len(datasets), 4.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        ours = top1[top1["dataset"] == dataset]
        sns.lineplot(data=ours, x="fraction", y="top1", hue="method", style="method", markers=True, dashes=False,
                     errorbar="sd", ax=ax)
        fractions = set(ours["fraction"])
        theirs = published[published["dataset"] == dataset]
        palette = sns.color_palette("dark", max(1, theirs.groupby(["method", "venue", "year"]).ngroups))
        markers = "osD^vP*Xph"
        for i, ((method, venue, year), rows) in enumerate(theirs.groupby(["method", "venue", "year"], sort=True)):
            first = rows.iloc[0]
            label = f"{method} ({venue} {year}; {first['backbone']}, {first['pretraining']}; published)"
            zero_shot = rows[rows["label_fraction"] == 0]
            for value in zero_shot["top1"]:
                ax.axhline(value, color=palette[i], linestyle=":", linewidth=1.5, label=label)
            labelled = rows[rows["label_fraction"] > 0].sort_values("label_fraction")
            if not labelled.empty:
                ax.plot(labelled["label_fraction"], labelled["top1"], linestyle="--", marker=markers[i % len(markers)],
                        markerfacecolor="none", markersize=8, color=palette[i], linewidth=1.2, label=label)
                fractions |= set(labelled["label_fraction"])
        ax.set_xscale("log")
        ax.set_xticks(sorted(fractions), [fraction_label(f) for f in sorted(fractions)])
        ax.minorticks_off()
        ax.set_ylim(0, 100)
        ax.set_xlabel("labeled fraction (log scale)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"{dataset}: top-1 vs labeled fraction (ours: mean ± sd over seeds)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        ax.grid(alpha=0.3)
    save_figure(fig, out)


def plot_per_class(run: dict, out: Path) -> None:
    """Per-class accuracy of one run, sorted, so the classes a method fails on stand out."""
    plt = _pyplot()
    per_class = pd.Series(run["per_class"], dtype=float).dropna().sort_values() * 100
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.22 * len(per_class)))
    ax.barh(per_class.index, per_class.values, color="#4C72B0")
    ax.axvline(100 * run["top1"], color="black", linestyle="--", linewidth=1, label=f"top-1 {100 * run['top1']:.1f}%")
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%)")
    ax.set_title(f"per-class accuracy: {run_title(run)}")
    ax.tick_params(axis="y", labelsize=7 if len(per_class) > 30 else 9)
    ax.legend(loc="lower right")
    save_figure(fig, out)


def plot_confusion(run: dict, out: Path) -> None:
    """Row-normalised confusion matrix (each row: how one true class was predicted); class
    names are the per_class keys, whose order is the label index order."""
    import numpy as np

    plt = _pyplot()
    names = list(run["per_class"])
    k = len(names)
    counts = np.zeros((k, k))
    np.add.at(counts, (np.asarray(run["test_labels"]), np.asarray(run["test_predictions"])), 1)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = min(22, 3 + 0.35 * k)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(k), names, rotation=90, fontsize=6 if k > 30 else 8)
    ax.set_yticks(range(k), names, fontsize=6 if k > 30 else 8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 20:
        for (i, j), value in np.ndenumerate(counts):
            if value:
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(f"confusion matrix (counts; colour = row fraction): {run_title(run)}")
    save_figure(fig, out)


def plot_training_curves(runs: list[dict], dataset: str, fraction: float, out: Path) -> list[str]:
    """Loss against step, mean ± sd over seeds per method, at one dataset and fraction.

    Teacher-only baselines write a header-only curve and are skipped; beside the total loss
    (whose terms differ between methods) the cross-entropy on labeled clips is drawn when
    present, since that term is common to every student. Returns the methods drawn.
    """
    import seaborn as sns

    plt = _pyplot()
    frames = []
    for run in runs:
        if run["dataset"] != dataset or not math.isclose(float(run["fraction"]), fraction):
            continue
        curve_path = run["dir"] / "train_curve.csv"
        curve = pd.read_csv(curve_path) if curve_path.exists() else pd.DataFrame()
        if curve.empty:
            continue
        frames.append(curve.assign(method=run_label(run, runs), seed=run["seed"]))
    if not frames:
        fig, ax = plt.subplots(figsize=(6.5, 2.5))
        ax.text(0.5, 0.5, f"no training curves: every run at {dataset}, {fraction_label(fraction)} labels "
                "is teacher-only", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        save_figure(fig, out)
        return []
    curves = pd.concat(frames, ignore_index=True)
    columns = [c for c in ("loss", "ce") if c in curves.columns]
    fig, axes = plt.subplots(1, len(columns), figsize=(6.5 * len(columns), 4.2), squeeze=False)
    for ax, column in zip(axes[0], columns):
        sns.lineplot(data=curves, x="step", y=column, hue="method", errorbar="sd", ax=ax)
        what = "total loss" if column == "loss" else "labeled cross-entropy"
        ax.set_title(f"{dataset}, {fraction_label(fraction)} labels: {what} (mean ± sd over seeds)", fontsize=10)
        ax.grid(alpha=0.3)
    save_figure(fig, out)
    return sorted(curves["method"].unique().tolist())


# --------------------------------------------------------------------------- pseudo-labels and per-class gains

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


def _note_figure(text: str, out: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 2.0))
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_axis_off()
    save_figure(fig, out)


def plot_pseudo_labels(runs: list[dict], dataset: str, out: Path) -> list[str]:
    """The pseudo-labels' accuracy (of those used: mask 1) and coverage against step, per method
    and labeled fraction, mean ± sd over seeds (each run's curve smoothed over 10 steps). Returns
    the methods drawn."""
    import seaborn as sns

    plt = _pyplot()
    frames = []
    for run in _runs_at(runs, dataset):
        path = run["dir"] / "train_curve.csv"
        curve = pd.read_csv(path) if path.exists() else pd.DataFrame()
        if "pl_accuracy" not in curve.columns:
            continue
        smooth = curve[["pl_accuracy", "pl_mask"]].rolling(10, min_periods=1).mean()
        frames.append(pd.DataFrame({"step": curve["step"], "accuracy": 100 * smooth["pl_accuracy"],
                                    "coverage": 100 * smooth["pl_mask"], "method": run_label(run, runs),
                                    "fraction": fraction_label(float(run["fraction"])), "seed": run["seed"]}))
    if not frames:
        _note_figure(f"no pseudo-label diagnostics on {dataset}: no run used unlabeled videos with pseudo-labels", out)
        return []
    data = pd.concat(frames, ignore_index=True)
    fractions = sorted(data["fraction"].unique(), key=lambda f: float(f.rstrip("%")))
    fig, axes = plt.subplots(2, len(fractions), figsize=(5.5 * len(fractions), 7), squeeze=False, sharex=True)
    for col, fraction in enumerate(fractions):
        part = data[data["fraction"] == fraction]
        for row, what in enumerate(("accuracy", "coverage")):
            ax = axes[row][col]
            sns.lineplot(data=part, x="step", y=what, hue="method", errorbar="sd", ax=ax, legend=(row, col) == (0, 0))
            ax.set_ylim(-2, 102)  # a method whose soft targets reach every clip sits at 100% coverage: on view
            ax.set_ylabel(f"pseudo-label {what} (%)")
            ax.set_title(f"{dataset}, {fraction} labels", fontsize=10)
            ax.grid(alpha=0.3)
    fig.suptitle("Pseudo-labels used in training, scored against the unlabeled videos' true labels "
                 "(never read by a loss)", fontsize=10)
    save_figure(fig, out)
    return sorted(data["method"].unique().tolist())


def plot_per_class_pseudo_labels(analysis: pd.DataFrame, dataset: str, out: Path) -> None:
    """Per class: the accuracy of the pseudo-labels each method trained on against the teacher's
    zero-shot test accuracy of the class, at the lowest labeled fraction, one marker per method."""
    import seaborn as sns

    rows = analysis[(analysis["dataset"] == dataset) & analysis["pseudo_label_accuracy"].notna()]
    if rows.empty:
        _note_figure(f"no per-class pseudo-label accuracy on {dataset}: it needs clip_zeroshot, supervised and a "
                     "method that trains on pseudo-labels in the grid", out)
        return
    fraction = rows["fraction"].min()
    rows = rows[rows["fraction"] == fraction]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    sns.scatterplot(data=rows, x="teacher_zeroshot", y="pseudo_label_accuracy", hue="method",
                    style="teacher" if rows["teacher"].nunique() > 1 else "method", ax=ax)
    ax.plot([0, 100], [0, 100], color="grey", lw=0.8, ls=":")
    ax.set(xlim=(-3, 103), ylim=(-3, 103), xlabel="teacher zero-shot test accuracy of the class (%)",
           ylabel="accuracy of the pseudo-labels used (%)")
    ax.set_title(f"{dataset}, {fraction_label(fraction)} labels: pseudo-labels per class", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, frameon=False)
    ax.grid(alpha=0.3)
    save_figure(fig, out)


def plot_gain_vs_teacher(analysis: pd.DataFrame, dataset: str, out: Path) -> None:
    """Per class: each method's gain over `supervised` (test accuracy, points, mean over seeds)
    against the teacher's zero-shot accuracy of the class, at the lowest labeled fraction; the
    classes with the largest gain and loss named."""
    import seaborn as sns

    rows = analysis[analysis["dataset"] == dataset]
    if rows.empty:
        _note_figure(f"no per-class gains on {dataset}: they need clip_zeroshot and supervised in the grid", out)
        return
    fraction = rows["fraction"].min()
    rows = rows[rows["fraction"] == fraction]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    several = rows["teacher"].nunique() > 1  # then one marker per teacher, one colour per method
    sns.scatterplot(data=rows, x="teacher_zeroshot", y="gain", hue="method", style="teacher" if several else "method",
                    ax=ax)
    ax.axhline(0, color="grey", lw=0.8)
    placed = []  # points already labelled: a label near one of them steps down a line, not over it
    for _, row in pd.concat([rows.nlargest(2, "gain"), rows.nsmallest(2, "gain")]).drop_duplicates().iterrows():
        x, y = row["teacher_zeroshot"], row["gain"]
        line = sum(abs(x - px) < 30 and abs(y - py) < 8 for px, py in placed)  # a label spans ~25 points of x
        placed.append((x, y))
        right = x > 70  # near the right edge the label runs leftwards, inside the axes
        ax.annotate(f"{row['class']} ({row['method']})", (x, y), fontsize=7, ha="right" if right else "left",
                    xytext=(-4 if right else 4, 3 - 9 * line), textcoords="offset points")
    ax.set(xlabel="teacher zero-shot test accuracy of the class (%)",
           ylabel=f"test accuracy gain over {BASELINE_METHOD} (points)")
    ax.set_title(f"{dataset}, {fraction_label(fraction)} labels: per-class gain against the teacher"
                 + (f" ({rows['teacher'].nunique()} teachers)" if several else ""), fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, frameon=False)  # clear of the points
    ax.grid(alpha=0.3)
    save_figure(fig, out)


def run_label(run: dict, runs: list[dict]) -> str:
    """A run's method as a figure's legend names it: with its teacher when `runs` have several."""
    several = len({r["teacher"] for r in runs}) > 1
    return f"{run['method']} [{run['teacher']}]" if several else run["method"]


def run_title(run: dict) -> str:
    return f"{run['dataset']} / {run['method']} / {fraction_label(float(run['fraction']))} labels / seed {run['seed']}"


# --------------------------------------------------------------------------- HTML

HTML_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead tr:first-child th { border-top: 2px solid #222; } thead tr:last-child th { border-bottom: 1px solid #222; }
tbody tr:last-child td { border-bottom: 2px solid #222; }
table.published td, table.published th { text-align: left; }
.warning { background: #b00020; color: #fff; padding: 1em; font-size: 1.3em; font-weight: bold; border-radius: 4px; }
.note { color: #555; font-size: 0.9em; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0 1.5em; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.3em 1em; }
dt { font-weight: bold; } dd { margin: 0; }
pre { background: #f5f5f5; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
"""

# Sets data-images-loaded on <body> once every image has decoded with a non-zero width, so a
# headless browser's DOM dump can prove that the embedded figures render.
HTML_IMAGE_CHECK = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.length > 0 && images.every(function (im) { return im.complete && im.naturalWidth > 0; });
  document.body.setAttribute("data-images-loaded", ok ? "all" : "incomplete");
  document.body.setAttribute("data-image-count", String(images.length));
});
"""


def to_html(tables: list[PaperTable], published: pd.DataFrame, provenance: dict, figures: list[tuple[str, Path]],
            chosen: dict, costs: pd.DataFrame | None = None, significance: pd.DataFrame | None = None) -> str:
    """A single self-contained page: inline CSS, images as base64 data URIs, no external resource.
    With significance (svar.significance.significance_table), each summary table is followed by its
    paired tests."""
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>svar report</title>", f"<style>{HTML_STYLE}</style>",
             f"<script>{HTML_IMAGE_CHECK}</script></head><body>",
             "<h1>svar benchmark report</h1>"]
    if provenance["teacher_random_weights"]:
        parts.append(f'<p class="warning" id="random-teacher-warning">WARNING: {esc(provenance["WARNING"])}</p>')
    selection = ("Accuracy is the final model’s: no checkpoint is chosen by test score."
                 if provenance["final_model_accuracy"]
                 else "<b>Not every run reports the final model’s accuracy</b> (see “accuracy of” below).")
    parts.append(f'<p class="note">Accuracy in %, mean ± std over seeds (sample std). {selection} '
                 "Best mean per column in bold.</p>")
    parts.append("<h2>Summary</h2>")
    for table in tables:
        parts.append(_html_table(table))
        parts.append(_html_significance(significance, table))
        rows = published[published["dataset"] == table.dataset]
        if not rows.empty:
            parts.append(_html_published(table.dataset, rows))
    parts.append("<h2>Figures</h2>")
    for caption, path in figures:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt=\"{esc(caption)}\" src=\"data:image/png;base64,{data}\">"
                     f"<figcaption class=\"note\">{esc(caption)}</figcaption></figure>")
    if costs is not None:
        parts.append("<h2>Cost per stage</h2>")
        parts.append(_html_costs(costs))
    parts.append("<h2>Provenance</h2>")
    parts.append(_html_provenance(provenance, chosen))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_table(table: PaperTable) -> str:
    esc = html.escape
    n = len(METRICS)
    head1 = "".join(f'<th colspan="{n}" style="text-align:center">{esc(fraction_label(f))} labels</th>'
                    for f in table.fractions)
    head2 = "".join(f"<th>{METRIC_LABELS[m]}</th>" for _ in table.fractions for m in METRICS)
    body = []
    for method in table.methods:
        cells = "".join(f"<td>{_text_cell(table, method, f, m, '<b>{}</b>')}</td>"
                        for f in table.fractions for m in METRICS)
        body.append(f"<tr><td>{esc(method)}</td>{cells}</tr>")
    key = table.slug if table.teacher_shown else table.dataset
    return (f'<h3>{esc(table.title)} ({seeds_text(table)} seeds)</h3>'
            + (f'<p class="note split">{esc(table.split)}.</p>' if table.split else "") +
            f'<table class="summary" id="summary-{esc(key)}"><thead><tr><th></th>{head1}</tr>'
            f"<tr><th>Method</th>{head2}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _html_costs(costs: pd.DataFrame) -> str:
    esc = html.escape
    note = ('<p class="note">From Snakemake\'s benchmark file of each job (results/&lt;name&gt;/benchmarks/): '
            "wall and CPU time in seconds, the largest peak resident memory of one job; "
            "<code>total</code> sums job times (what a cluster bills), not the run's elapsed time. "
            "A job that did not run here (outputs copied or pulled with DVC) has no file. The estimate is "
            "<code>svar plan</code>'s (results/&lt;name&gt;/plan.csv: measured rates × this config's work).</p>")
    if costs.empty:
        return note + '<p class="note" id="costs">No benchmark files found.</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in ["stage", "jobs", *(h for h, _ in COST_COLUMNS.values())])
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cost_cells(row)) + "</tr>"
                   for _, row in costs.iterrows())
    return f'{note}<table class="summary" id="costs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _html_published(dataset: str, rows: pd.DataFrame) -> str:
    esc = html.escape
    body = "".join(
        f"<tr><td>{esc(r.method)}</td><td>{esc(r.venue)} {r.year}</td><td>{esc(r.backbone)}</td>"
        f"<td>{esc(r.pretraining)}</td><td>{esc(r.split_convention)}</td>"
        f"<td>{esc(fraction_label(r.label_fraction))}</td>"
        f"<td>{r.top1:.1f}</td><td>{esc(r.source)}</td></tr>"
        for r in rows.sort_values(["label_fraction", "method"]).itertuples())
    return (f"<h3>Published results on {esc(dataset)} (top-1 %, as printed; not run here)</h3>"
            '<table class="published"><thead><tr><th>Method</th><th>Venue</th><th>Backbone</th><th>Pretraining</th>'
            "<th>Split convention</th><th>Labels</th><th>Top-1</th><th>Source</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _html_provenance(provenance: dict, chosen: dict) -> str:
    esc = html.escape

    def listed(values) -> str:
        text = ", ".join(v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in values)
        return esc(text) + (" <b>(MIXED)</b>" if len(values) > 1 else "")

    weights = listed(provenance["teacher_weights"])
    if provenance["teacher_random_weights"]:
        weights = f'<span class="warning">{weights}</span>'
    decoders = "; ".join(", ".join(f"{k} {v}" for k, v in sorted(d.items())) for d in provenance["decoders"])
    students = "<br>".join(f"{esc(m)}: {listed(s)}" for m, s in provenance["student"].items())
    evaluation = "<br>".join(f"{esc(m)}: {listed(['teacher features' if e is None else e for e in s])}"
                             for m, s in provenance.get("evaluation", {}).items())
    configs = provenance["method_config"]
    distinct_configs = _distinct(c for values in configs.values() for c in values)
    if len(distinct_configs) == 1:
        config = f"(same for every method)<pre>{esc(json.dumps(distinct_configs[0], indent=2, sort_keys=True))}</pre>"
    else:
        config = "".join(f"<details><summary>{esc(m)}</summary><pre>{esc(json.dumps(c, indent=2, sort_keys=True))}"
                         "</pre></details>" for m, c in configs.items())
    items = [("runs", str(provenance["runs"])),
             ("teacher model", listed(provenance["teacher_model"])),
             ("teacher weights", weights),
             ("student", students),
             ("evaluation", evaluation),
             ("split convention", listed(provenance["split_convention"])),
             ("labeled lists", listed(provenance.get("list_source", []))),
             ("the seed varies", listed(provenance.get("seed_varies", []))),
             ("test views", "<br>".join(f"{esc(m)}: {listed(v)}" for m, v in provenance.get("views", {}).items())),
             ("decoders", esc(decoders) + (" <b>(MIXED)</b>" if len(provenance["decoders"]) > 1 else "")),
             ("git commit", listed(provenance["git_commit"])),
             ("uncommitted changes", listed(["unknown" if d is None else ("YES" if d else "no")
                                             for d in provenance.get("git_dirty", [])])),
             ("accuracy of", listed(provenance["accuracy_of"])),
             ("final model's accuracy", "yes" if provenance["final_model_accuracy"] else "<b>NO</b>"),
             ("per-class / confusion run", esc(chosen["title"])),
             ("method configuration", config)]
    return '<dl id="provenance">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


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
    tables = paper_tables(summary, metrics)
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
         "dataset under a comparable split convention (hollow, dashed; dotted: zero-shot)", paths["accuracy_plot"]),
        (f"Per-class accuracy: {chosen['title']}", paths["per_class_plot"]),
        (f"Confusion matrix: {chosen['title']}", paths["confusion_plot"]),
        (f"Training curves at {fraction_label(fraction)} labels, mean ± sd over seeds "
         f"({', '.join(curve_methods) or 'none: teacher-only runs have no curve'})", paths["training_curves_plot"]),
        ("Pseudo-labels used in training: their accuracy against the unlabeled videos' true labels (which no loss "
         f"reads) and their coverage, per labeled fraction ({', '.join(pseudo_methods) or 'no method uses any'})",
         paths["pseudo_labels_plot"]),
        ("Per class: accuracy of the pseudo-labels each method trained on against the teacher's zero-shot test "
         "accuracy of the class (lowest labeled fraction)", paths["pseudo_labels_per_class_plot"]),
        (f"Per class: test accuracy gain over {BASELINE_METHOD} against the teacher's zero-shot accuracy of the "
         "class (lowest labeled fraction; per_class_analysis.csv holds every fraction)", paths["gain_vs_teacher_plot"]),
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
    paths = make_report(metrics_csv, run_files, out_dir, published_csv, run, benchmarks_dir, plan_csv)
    for name, path in paths.items():
        print(f"{name:22s} {path}")
    return 0
