"""Published results: svar/data/published_results.csv, every row validated against
published_results.schema.json (a row without a source or a split convention never reaches a
figure), and which of them may be set beside a benchmark's runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..wording import counted

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


def comparable_published(published: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """The published rows that may be drawn beside our runs: the same dataset and fraction, and a
    comparable split convention (svar.splits.comparable_conventions: the same lists, or the same
    rule over the same pool, which depends on the dataset and the fraction). A zero-shot number
    (no labels) depends on no split and is kept."""
    from ..splits import comparable_conventions

    keep = published["label_fraction"] == -1  # all False, on published's index
    for dataset, rows in metrics.groupby("dataset"):
        conventions = set(rows["convention"]) if "convention" in rows.columns else set()
        same_dataset = published["dataset"] == dataset
        keep |= same_dataset & (published["label_fraction"] == 0)
        for convention in conventions:
            for fraction in published.loc[same_dataset, "label_fraction"].unique():
                comparable = comparable_conventions(dataset, convention, fraction)
                keep |= (same_dataset & (published["label_fraction"] == fraction)
                         & published["split_convention"].isin(comparable))
    return published[keep]
