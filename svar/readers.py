"""Reading svar's own outputs, so that a file that cannot be read says which file it is.

Every output is written atomically (svar.atomic), so a truncated or garbled one was damaged
afterwards (a full disk elsewhere, a copy cut short, a hand edit). A read failure becomes a
`CorruptFileError` that names the file, says it is corrupt, and names the rule that makes it,
so a user knows what to delete; a missing file names the rule too. `is_intact` is the cheap
check the workflow runs on existing outputs before it schedules anything.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path


class CorruptFileError(ValueError):
    """A svar output that exists but cannot be read."""

    def __init__(self, path, what: str, rule: str, reason):
        self.path = Path(path)
        super().__init__(f"{path}: cannot be read as the {what}: it is corrupt or truncated, or another kind of "
                         f"file ({reason}); rule {rule} makes it: delete a damaged one and rerun")


def _missing(path, what: str, rule: str) -> FileNotFoundError:
    return FileNotFoundError(f"{path}: no such {what}; rule {rule} makes it")


def load_torch(path, what: str, rule: str):
    """A torch file svar wrote (weights only: tensors, lists, dicts, numbers, strings)."""
    import pickle

    import torch

    if not os.path.exists(path):
        raise _missing(path, what, rule)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: a folder, not a {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        # the first sentence of torch's reason (the rest is advice about weights_only, not for svar's files)
        reason = str(exc).splitlines()[0].split(". ")[0] if str(exc) else type(exc).__name__
        raise CorruptFileError(path, what, rule, reason) from exc


def read_csv(path, what: str, rule: str, **kwargs):
    """A CSV svar wrote, as a DataFrame (empty cells stay empty strings unless told otherwise)."""
    import pandas as pd

    if not os.path.exists(path):
        raise _missing(path, what, rule)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: a folder, not a {what}")
    kwargs.setdefault("keep_default_na", False)
    try:
        return pd.read_csv(path, **kwargs)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CorruptFileError(path, what, rule, f"not a CSV file: {str(exc).splitlines()[0]}") from exc


def read_json(path, what: str, rule: str):
    if not os.path.exists(path):
        raise _missing(path, what, rule)
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(path, what, rule, f"not JSON: {exc}") from exc


def is_intact(path) -> bool:
    """Whether a torch file's zip container opens: its end record and central directory are
    read, not its data, so a checkpoint of any size is checked in milliseconds. A truncated file
    (the usual damage) fails; bytes garbled in the middle are found only when it is loaded."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False
