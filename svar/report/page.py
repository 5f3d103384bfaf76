"""report.html: one self-contained page (inline CSS, figures as data URIs) that opens offline."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from ..aggregate import METRICS
from ..costs import SHOWN as COST_COLUMNS, cost_cells
from .tables import (METRIC_LABELS, PUBLISHED_COLUMNS, PUBLISHED_TITLE, SIGNIFICANCE_HEADERS, SIGNIFICANCE_NOTE,
                     PaperTable, distinct, fraction_label, published_records, seeds_text, significance_grid,
                     significance_text, text_cell)
from ..wording import counted


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
/* inline beside its text: a badge's padding stays inside its own line, never over the next one's */
.badge { display: inline-block; background: #b00020; color: #fff; font-weight: bold; font-size: 0.85em;
         line-height: 1.3; padding: 0 0.4em; margin-right: 0.4em; border-radius: 3px; }
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
        parts.append(_html_published(published, table))
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
    head1 = "".join(f'<th colspan="{n}" style="text-align:center">{esc(table.budget(f))} labels</th>'
                    for f in table.fractions)
    head2 = "".join(f"<th>{METRIC_LABELS[m]}</th>" for _ in table.fractions for m in METRICS)
    body = []
    for method in table.methods:
        cells = "".join(f"<td>{text_cell(table, method, f, m, '<b>{}</b>')}</td>"
                        for f in table.fractions for m in METRICS)
        body.append(f"<tr><td>{esc(method)}</td>{cells}</tr>")
    key = table.slug if table.teacher_shown else table.dataset
    return (f'<h3>{esc(table.title)} ({esc(seeds_text(table))})</h3>'
            + (f'<p class="note split">{esc(table.split)}.</p>' if table.split else "") +
            f'<table class="summary" id="summary-{esc(key)}"><thead><tr><th></th>{head1}</tr>'
            f"<tr><th>Method</th>{head2}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            + (f'<p class="note settings">{esc(table.settings)}.</p>' if table.settings else ""))


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


def _html_published(published: pd.DataFrame, table: PaperTable) -> str:
    """The published rows beside one summary table, with their differences from its runs; "" when none."""
    esc = html.escape
    records = published_records(published, table)
    if not records:
        return ""
    head = "".join(f"<th>{esc(h)}</th>" for h, _ in PUBLISHED_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(r[key]))}</td>" for _, key in PUBLISHED_COLUMNS) + "</tr>"
                   for r in records)
    return (f"<h3>{esc(PUBLISHED_TITLE.format(dataset=table.dataset))}</h3>"
            f'<table class="published"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def _html_provenance(provenance: dict, chosen: dict) -> str:
    esc = html.escape

    def listed(values) -> str:
        text = ", ".join(v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in values)
        return esc(text) + (" <b>(MIXED)</b>" if len(values) > 1 else "")

    weights = listed(provenance["teacher_weights"])
    if provenance["teacher_random_weights"]:
        others = [w for w in provenance["teacher_weights"] if w != "RANDOM"]
        weights = (f'<span class="badge" id="random-teacher-badge">RANDOM</span> in '
                   f'{provenance["runs_with_random_teacher"]} of {counted(provenance["runs"], "run")}'
                   + (f"; the others: {listed(others)}" if others else ""))
    decoders = "; ".join(", ".join(f"{k} {v}" for k, v in sorted(d.items())) for d in provenance["decoders"])
    students = "<br>".join(f"{esc(m)}: {listed(s)}" for m, s in provenance["student"].items())
    evaluation = "<br>".join(f"{esc(m)}: {listed(['teacher features' if e is None else e for e in s])}"
                             for m, s in provenance.get("evaluation", {}).items())
    configs = provenance["method_config"]
    distinct_configs = distinct(c for values in configs.values() for c in values)
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
                   + "".join(f"<td>{esc(significance_text(cells, method, f, a))}</td>"
                             for f in fractions for a in SIGNIFICANCE_HEADERS) + "</tr>"
                   for method in methods)
    key = table.slug if table.teacher_shown else table.dataset
    return (f"<h4>Paired tests on {esc(table.title)}</h4>"
            f'<p class="note">{esc(SIGNIFICANCE_NOTE)}</p>'
            f'<table class="significance" id="significance-{esc(key)}"><thead><tr><th></th>{head1}</tr>'
            f"<tr><th>Method</th>{head2}</tr></thead><tbody>{body}</tbody></table>")
