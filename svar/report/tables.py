"""The report's tables as a paper prints them: the summary (methods as rows, one column group per
label fraction) and the paired tests under it, in Markdown and LaTeX (booktabs); svar.report.page
sets the same tables in the HTML page."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pandas as pd

from ..aggregate import GROUP, METRICS, cell_text, several_teachers, with_teacher
from ..significance import AGAINST_BASELINE, AGAINST_BEST, significance_cell
from ..wording import counted, noun
from .protocol import RunProtocol, fraction_label, table_protocols
from .published import published_beside

METRIC_LABELS = {"top1": "Top-1", "top5": "Top-5", "mean_class": "Mean-class"}


def distinct(values) -> list:
    """The distinct values in the order first seen; dicts and lists compare by their content."""
    seen, out = set(), []
    for value in values:
        key = json.dumps(value, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


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
    settings: str = ""  # what its runs were trained and scored with (settings_text)
    shots: dict = field(default_factory=dict)  # fraction -> K, for the columns of K-shot runs
    # its runs' protocols in the published table's words, which a published row is compared with
    protocols: list[RunProtocol] = field(default_factory=list)

    def budget(self, fraction) -> str:
        """A column's label budget as printed: '10%', or '4 shots (2.1%)'."""
        return fraction_label(fraction, self.shots.get(fraction))

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
    source = sources[0] if len(sources) == 1 else f"{counted(len(sources), 'list source')} (one per seed/fraction)"
    if all(s.startswith("drawn with seed") for s in sources):
        source = "labeled videos drawn with each run's seed"
    return (f"split convention {', '.join(sorted(rows['convention'].unique()))}; {source}; "
            f"the seed varies {', '.join(sorted(rows['seed_varies'].unique()))}")


# What a student run was trained and scored with, each read from its metrics.json (svar.evaluate's
# provenance: the options the run was given, its clips, the test views averaged), worded as the
# settings line under a table says it; None where a run has no such setting (μ of supervised).
RUN_SETTINGS = (
    lambda p: _train(p, "steps", lambda v: counted(v, "step")),
    lambda p: _train(p, "batch_size", lambda v: f"batch {v}"),
    lambda p: _train(p, "lr", lambda v: f"lr {v:g}"),
    lambda p: _train(p, "unlabeled_ratio", lambda v: f"μ = {v:g} unlabeled per labeled clip"),
    lambda p: f"test views {p['views']}" if p.get("views") else None,
    lambda p: _clips_text(p.get("clips")),
)


def _train(provenance: dict, key: str, text) -> str | None:
    value = (provenance.get("options") or {}).get("train", {}).get(key)
    return None if value is None else text(value)


def _clips_text(clips: dict | None) -> str | None:
    """'clips of 8 frames at 112×112 px, dense sampling (stride 4)'"""
    if not clips:
        return None
    stride = f" (stride {clips['stride']})" if clips["sampling"] == "dense" else ""
    return (f"clips of {counted(clips['frames'], 'frame')} at {clips['size']}×{clips['size']} px, "
            f"{clips['sampling']} sampling{stride}")


def settings_text(runs: list[dict]) -> str:
    """One table's training and evaluation settings as its runs record them (never the config's):
    steps, batch, lr, μ (train.unlabeled_ratio), the test views (clips × crops) and the student's
    clips. A setting every student run shares is said once; one that differs names its methods
    beside each value, as does one only some methods have (μ); teacher-only heads are listed."""
    students = [r for r in runs if r["provenance"].get("evaluate") is not None]  # teacher-only: scored on features
    every = {r["method"] for r in students}
    parts = []
    for read in RUN_SETTINGS:
        methods_of: dict[str, set] = {}
        for run in students:
            text = read(run["provenance"])
            if text is not None:
                methods_of.setdefault(text, set()).add(run["method"])
        shared = len(methods_of) == 1 and every in methods_of.values()
        parts += [text if shared else f"{text} ({', '.join(sorted(methods))})"
                  for text, methods in sorted(methods_of.items(), key=lambda item: sorted(item[1]))]
    teacher_only = sorted({r["method"] for r in runs} - every)
    if teacher_only:
        parts.append(f"teacher-only, no student trained: {', '.join(teacher_only)}")
    return "Settings as run (from the runs' metrics.json): " + "; ".join(parts) if parts else ""


def budget_shots(rows: pd.DataFrame) -> dict:
    """{fraction: K} for the summary rows of K-shot runs (column shots, svar.aggregate)."""
    if "shots" not in rows.columns:
        return {}
    return {float(f): int(k) for f, k in zip(rows["fraction"], rows["shots"]) if pd.notna(k)}


def paper_tables(summary: pd.DataFrame, metrics: pd.DataFrame | None = None,
                 runs: list[dict] | None = None) -> list[PaperTable]:
    """One table per dataset and teacher (config `teachers`: the teacher is a grid axis); with the
    runs (svar.report.provenance.load_runs), each table carries the settings its runs were made with."""
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
        # a table older than the teacher axis (teacher unrecorded) takes its dataset's runs
        its_runs = [r for r in runs or () if r["dataset"] == dataset and teacher in ("unrecorded", r["teacher"])]
        tables.append(PaperTable(dataset, sorted(rows["method"].unique()), fractions, cells, best,
                                 sorted(rows.loc[rows["n_seeds"] > 0, "n_seeds"].unique().tolist()),
                                 split_text(metrics, dataset) if metrics is not None else "", teacher, shown,
                                 settings_text(its_runs), budget_shots(rows), table_protocols(its_runs)))
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


def seeds_text(table: PaperTable) -> str:
    """'1 seed', '3 seeds', '2–3 seeds' (methods with different numbers of seeds)."""
    low, high = table.seeds[0], table.seeds[-1]
    return f"{low}–{high} {noun(high, 'seed')}" if low != high else counted(low, "seed")


def md_escape(text) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(tables: list[PaperTable], published: pd.DataFrame, warning: str | None,
                significance: pd.DataFrame | None = None) -> str:
    lines = ["# Summary: accuracy (%), mean ± std over seeds", ""]
    if warning:
        lines += [f"> **WARNING: {warning}**", ""]
    for table in tables:
        lines += [f"## {md_escape(table.title)} ({seeds_text(table)}; final model, no test-set model selection)", ""]
        if table.split:
            lines += [f"{md_escape(table.split)}.", ""]
        header = ["Method"] + [f"{table.budget(f)} {METRIC_LABELS[m]}" for f in table.fractions for m in METRICS]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
        for method in table.methods:
            cells = [text_cell(table, method, f, m, "**{}**") for f in table.fractions for m in METRICS]
            lines.append("| " + " | ".join([md_escape(method), *cells]) + " |")
        lines.append("")
        if table.settings:
            lines += [f"{md_escape(table.settings)}.", ""]
        lines += _markdown_significance(significance, table)
        lines += _markdown_published(published, table)
    return "\n".join(lines)


# the published table's columns as every format prints them: (header, the row's field)
PUBLISHED_COLUMNS = (("Method", "method"), ("Venue", "venue_year"), ("Backbone", "backbone"),
                     ("Pretraining", "pretraining"), ("Clip", "clip"), ("Views", "views"),
                     ("Split convention", "split_convention"), ("Labels", "labels"), ("Top-1", "top1_text"),
                     ("Differences from our runs", "differences"), ("Source", "source"))
PUBLISHED_TITLE = ("Published results on {dataset} under a comparable split convention (top-1 %, as printed; "
                   "not run here), each with every difference in protocol from our runs beside it")


def published_records(published: pd.DataFrame, table: PaperTable) -> list[dict]:
    """The table's published rows (published_beside) with the fields PUBLISHED_COLUMNS prints."""
    rows = published_beside(published, table.dataset, table.protocols)
    return [{**r, "venue_year": f"{r['venue']} {r['year']}", "top1_text": f"{r['top1']:.1f}"}
            for r in rows.to_dict("records")]


def _markdown_published(published: pd.DataFrame, table: PaperTable) -> list[str]:
    records = published_records(published, table)
    if not records:
        return []
    header = [h for h, _ in PUBLISHED_COLUMNS]
    numeric = {"Labels", "Top-1"}
    lines = [f"### {PUBLISHED_TITLE.format(dataset=table.dataset)}", "",
             "| " + " | ".join(header) + " |", "|" + "".join("---:|" if h in numeric else "---|" for h in header)]
    for r in records:
        lines.append("| " + " | ".join(md_escape(r[key]) for _, key in PUBLISHED_COLUMNS) + " |")
    return lines + [""]


def _latex_published(published: pd.DataFrame | None, table: PaperTable) -> str:
    """The published rows beside one summary table as a booktabs table (source and split convention
    in the Markdown and HTML forms), or "" when none is drawn."""
    records = published_records(published, table) if published is not None else []
    if not records:
        return ""
    shown = [c for c in PUBLISHED_COLUMNS if c[1] not in ("source", "split_convention")]
    lines = ["\\begin{table}[t]", "\\centering", "\\small",
             f"\\caption{{{latex_escape(PUBLISHED_TITLE.format(dataset=table.title))}.}}",
             f"\\label{{tab:{table.slug}-published}}",
             "\\begin{tabular}{" + "l" * (len(shown) - 1) + "p{0.35\\linewidth}}", "\\toprule",
             " & ".join(latex_escape(h) for h, _ in shown) + " \\\\", "\\midrule"]
    for r in records:
        lines.append(" & ".join(latex_escape(r[key]) for _, key in shown) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines)


def text_cell(table: PaperTable, method, fraction, metric, bold: str) -> str:
    value = table.cell(method, fraction, metric)
    if value is None:
        return "–"
    text = cell_text(value[0] / 100, value[1] / 100)
    return bold.format(text) if table.is_best(method, fraction, metric) else text


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(tables: list[PaperTable], warning: str | None, significance: pd.DataFrame | None = None,
             published: pd.DataFrame | None = None) -> str:
    """One booktabs table per dataset; best mean per column in bold. Needs \\usepackage{booktabs}.
    With significance (svar.significance.significance_table), each is followed by its paired tests;
    with published (comparable_published's rows), by the published rows and their differences."""
    blocks = ["% generated by svar report; needs \\usepackage{booktabs}"]
    for table in tables:
        n = len(METRICS)
        spread = (f"mean $\\pm$ std over {seeds_text(table)}" if table.seeds[-1] > 1
                  else f"{seeds_text(table)}, no std")
        caption = (f"Accuracy (\\%) on {latex_escape(table.title)}: {spread}, final model (no test-set model "
                   "selection). Best mean per column in bold.")
        if table.split:
            caption += f" {latex_escape(table.split[0].upper() + table.split[1:])}."
        if warning:
            caption += f" \\textbf{{{latex_escape(warning)}.}}"
        groups = " & ".join(f"\\multicolumn{{{n}}}{{c}}{{{latex_escape(table.budget(f))} labels}}"
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
        theirs = _latex_published(published, table)
        if theirs:
            blocks.append(theirs)
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


def significance_text(cells: dict, method, fraction, against, latex: bool = False) -> str:
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
        row = [md_escape(significance_text(cells, method, f, a)) for f in fractions for a in SIGNIFICANCE_HEADERS]
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
        row = [significance_text(cells, method, f, a, latex=True) for f in fractions for a in SIGNIFICANCE_HEADERS]
        lines.append(" & ".join([latex_escape(method), *row]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines)
