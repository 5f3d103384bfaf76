"""Published results: svar/data/published_results.csv, every row validated against
published_results.schema.json (a row without a source or a split convention never reaches a
figure), which of them may be set beside a benchmark's runs, and how each differs from them
(svar.report.protocol)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..wording import counted
from .protocol import differences, labels_text, run_shots, shots_column

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
PUBLISHED_CSV = DATA_DIR / "published_results.csv"
PUBLISHED_SCHEMA = DATA_DIR / "published_results.schema.json"


class PublishedResultsError(ValueError):
    """The published-results table breaks its schema; the message names each bad row and field."""


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
                            f"{_error_message(error, record)}")
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
    if error.validator == "oneOf":  # the fields of which exactly one is given (label_fraction, shots)
        return ", ".join(_one_of_fields(error))
    return "(row)"


def _one_of_fields(error) -> list[str]:
    return list(dict.fromkeys(f for branch in error.validator_value for f in branch.get("required", [])))


def _error_message(error, record: dict) -> str:
    if error.validator != "oneOf":
        return error.message
    fields = _one_of_fields(error)
    given = [f for f in fields if f in record]
    branches = "; ".join(f"{branch['required'][0]}: {branch['title']}" for branch in error.validator_value)
    return (f"give exactly one of {' or '.join(fields)} ({branches}); "
            f"this row gives {' and '.join(given) if given else 'neither'}")


def comparable_published(published: pd.DataFrame, metrics: pd.DataFrame, runs: list[dict] = ()) -> pd.DataFrame:
    """The published rows that may be drawn beside our runs: the same dataset and a comparable
    split convention (svar.splits.comparable_conventions: the same lists, or the same rule over
    the same pool, which depends on the dataset and the fraction); a K-shot row only beside runs
    at the same K (metrics.csv's `shots` column where it has one, else each run's metrics.json
    `shots`) of a convention comparable with its K-shot lists. A zero-shot number (no labels)
    depends on no split and is kept."""
    from ..splits import comparable_conventions

    keep = published["label_fraction"] == 0  # zero-shot rows, for the datasets of our runs below
    keep &= published["dataset"].isin(set(metrics["dataset"]))
    fractions = published["label_fraction"].dropna().unique()
    shots = shots_column(published)
    for (dataset, convention), run_shots_seen in _run_conventions(metrics, runs).items():
        same_dataset = published["dataset"] == dataset
        for fraction in fractions:
            keep |= (same_dataset & (published["label_fraction"] == fraction)
                     & published["split_convention"].isin(comparable_conventions(dataset, convention, fraction)))
        for k in run_shots_seen:
            keep |= (same_dataset & (shots == k)
                     & published["split_convention"].isin(comparable_conventions(dataset, convention, None, k)))
    return published[keep]


def _run_conventions(metrics: pd.DataFrame, runs) -> dict[tuple[str, str], set[int]]:
    """(dataset, split convention) of our runs → the K of those that are K-shot runs."""
    out: dict[tuple[str, str], set[int]] = {}
    conventions = metrics["convention"] if "convention" in metrics.columns else pd.Series(dtype=str)
    for dataset, convention, k in zip(metrics["dataset"], conventions.reindex(metrics.index),
                                      shots_column(metrics)):
        if pd.notna(convention):  # a table without split columns: no convention, nothing comparable
            out.setdefault((dataset, convention), set()).update({int(k)} if pd.notna(k) else set())
    for run in runs:
        k = run_shots(run)
        convention = (run.get("split") or {}).get("convention")
        if k is not None and convention:
            out.setdefault((run["dataset"], convention), set()).add(k)
    return out


def published_beside(published: pd.DataFrame, dataset: str, protocols) -> pd.DataFrame:
    """A dataset's published rows as the report's tables print them: by labels, then method, each
    with its labels (labels_text) and every difference from the runs it is drawn beside
    (svar.report.protocol.differences against the table's run protocols)."""
    rows = published[published["dataset"] == dataset]
    rows = rows.assign(shots=shots_column(rows)).sort_values(["label_fraction", "shots", "method"],
                                                             na_position="last")
    records = rows.to_dict("records")
    return rows.assign(labels=[labels_text(r["label_fraction"], r["shots"]) for r in records],
                       differences=[differences(r, protocols, dataset) for r in records])
