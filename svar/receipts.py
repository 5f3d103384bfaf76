"""Records of the files svar writes: each file's size and checksum, written as the file is written,
so that a file changed afterwards (truncated, zeroed in place, edited by hand) is found.

A record is a sidecar beside its file, `.<name>.record.json` ({"size", "sha256", "mtime_ns"}):
it travels with the file's folder (a copy, DVC's folder outputs) and needs no shared ledger
that parallel jobs would have to lock. `check` compares a file with its record: the size always;
the checksum always when asked (`checksum=True`), else only when the file's modification time
is not the recorded one (a file changed in place has a new one), so the workflow's check before
every run (guard.smk's guard_outputs) costs a stat per file until something changed. `svar
verify` checks every record of a results folder with its checksum, the way `dvc status` checks
a cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .atomic import write_json

SUFFIX = ".record.json"
# read in blocks of this size: a shard of several GB is hashed without holding it
BLOCK = 1 << 20


def record_path(path) -> Path:
    """The sidecar holding a file's record."""
    path = Path(path)
    return path.with_name(f".{path.name}{SUFFIX}")


def recorded_file(record) -> Path:
    """The file a sidecar records (the inverse of record_path)."""
    record = Path(record)
    return record.with_name(record.name[1:-len(SUFFIX)])


def sha256(path) -> str:
    """The file's SHA-256, read in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def describe(path) -> dict:
    """What a record holds of a file now: size, checksum, modification time."""
    st = os.stat(path)
    return {"size": st.st_size, "sha256": sha256(path), "mtime_ns": st.st_mtime_ns}


def record(path, **extra) -> dict:
    """Write a file's record beside it (with `extra` keys, e.g. the parts a gathered file was made
    from) and return it."""
    entry = {**describe(path), **extra}
    write_json(record_path(path), entry)
    return entry


def read_record(path) -> dict | None:
    """A file's record, None when it has none (a file svar did not record: not checked). A record
    that cannot be read is reported as such by `check`."""
    sidecar = record_path(path)
    if not sidecar.exists():
        return None
    try:
        entry = json.loads(sidecar.read_text())
        int(entry["size"]), str(entry["sha256"])
        return entry
    except (OSError, ValueError, KeyError, TypeError):
        return {"size": -1, "sha256": "", "unreadable": True}


def difference(path, expected: dict, checksum: bool = True) -> str | None:
    """How the file at `path` differs from `expected` (a record, or a part's entry in a receipt:
    size and sha256), in words; None when it does not. With checksum=False the checksum is read
    only when the file's modification time is not the recorded one."""
    if expected.get("unreadable"):
        return f"its record {record_path(path)} cannot be read"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    if st.st_size != int(expected["size"]):
        return f"size {st.st_size} bytes, recorded {expected['size']}"
    if checksum or st.st_mtime_ns != expected.get("mtime_ns"):
        digest = sha256(path)
        if digest != expected["sha256"]:
            return f"checksum sha256 {digest[:12]}…, recorded {expected['sha256'][:12]}… (same size: changed in place)"
    return None


def check(path, checksum: bool = True) -> str | None:
    """How a file differs from its record (None: it matches, or it has no record)."""
    entry = read_record(path)
    return None if entry is None else difference(path, entry, checksum)


def records_under(folder) -> list[Path]:
    """Every recorded file under a folder (by its sidecar), sorted; the file may be missing."""
    return sorted(recorded_file(r) for r in Path(folder).rglob(f".*{SUFFIX}"))


def verify(folder, checksum: bool = True) -> tuple[list[Path], dict[Path, str]]:
    """Every recorded file under `folder`, and how each that differs from its record differs."""
    files = records_under(folder)
    return files, {f: d for f in files if (d := check(f, checksum)) is not None}


def main_verify(folder) -> int:
    """`svar verify`: name each file of a results folder that differs from its record; exit
    status 1 if any does, else 0 with one line."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such results folder (the workflow writes results/<config name>)")
    files, differing = verify(folder)
    if not files:
        raise ValueError(f"{folder}: no file with a record (.<name>{SUFFIX}) under it: not a results folder "
                         "svar wrote, or written before svar recorded its files (rerun the workflow)")
    for path, how in differing.items():
        print(f"{path}: {how}")
    if differing:
        print(f"{len(differing)} of {len(files)} files differ from their records: delete them (or restore them: "
              "dvc checkout) and rerun the workflow, which makes them again")
        return 1
    print(f"{len(files)} files verified ({folder})")
    return 0
