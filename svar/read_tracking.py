"""Which config keys a job reads of the ones it is given: a tracking view of its --options.

Every config value a job reads reaches it through its rule's params (what Snakemake records and
compares): a key the params carry and the job never reads reruns it for nothing. With the
environment variable SVAR_RECORD_READS set to a folder (the test suite's complete tiny run sets
it), `svar train` and `svar clip-cache` wrap their --options in a ReadTracking view and, on exit,
write there the keys they were given and those their code read (tests/test_rerun_exactness.py
holds the two equal). Outside the tests the options are a plain dict.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import uuid
from pathlib import Path

ENV = "SVAR_RECORD_READS"


def leaves(node, path=()) -> set[str]:
    """The dotted keys of a nested dict's leaves."""
    if isinstance(node, dict):
        return {leaf for key, value in dict.items(node) for leaf in leaves(value, (*path, key))}
    return {".".join(path)}


class ReadTracking(dict):
    """A dict whose leaf reads are logged: `view["train"]["lr"]` logs train.lr; walking a
    section's items or values, or copying it, logs all of its leaves (the code saw them)."""

    def __init__(self, data: dict, log: set, path: tuple = ()):
        super().__init__({k: ReadTracking(v, log, (*path, k)) if isinstance(v, dict) else v for k, v in data.items()})
        self._log, self._path = log, path

    def _saw(self, key):
        value = dict.__getitem__(self, key)
        if isinstance(value, ReadTracking):
            value._saw_all()
        else:
            self._log.add(".".join((*self._path, key)))

    def _saw_all(self):
        for key in dict.keys(self):
            self._saw(key)

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if not isinstance(value, ReadTracking):
            self._log.add(".".join((*self._path, key)))
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default

    def items(self):
        self._saw_all()
        return dict.items(self)

    def values(self):
        self._saw_all()
        return dict.values(self)

    def __iter__(self):  # dict(view), {**view}, copy: every key seen
        self._saw_all()
        return dict.__iter__(self)

    def __deepcopy__(self, memo):
        self._saw_all()
        import copy

        return {k: copy.deepcopy(v, memo) for k, v in dict.items(self)}


def plain(node):
    """A copy of options as plain dicts, for a record of them (a checkpoint's, a resume key's):
    recording is not reading, and a checkpoint holds no class but the builtins."""
    return {k: plain(v) for k, v in dict.items(node)} if isinstance(node, dict) else node


def tracked(options: dict, command: str) -> dict:
    """`options` as a ReadTracking view whose reads are written to $SVAR_RECORD_READS when the
    process exits; `options` itself when the variable is unset."""
    folder = os.environ.get(ENV)
    if not folder:
        return options
    log: set = set()
    view = ReadTracking(options, log)
    given = sorted(leaves(options))

    def write():
        record = {"command": command, "argv": sys.argv, "given": given, "read": sorted(log & set(given))}
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{command}-{uuid.uuid4().hex}.json").write_text(json.dumps(record))

    atexit.register(write)
    return view
