"""One Snakemake run per working folder.

Snakemake's own locks come too late for a second run started in a folder where one is running:
it first finds the running jobs' outputs marked incomplete and says `IncompleteFilesException ...
rerun with --rerun-incomplete`, and following that advice starts the same jobs a second time. The
Snakefile takes this lock first, for the life of the Snakemake process that schedules jobs: a
kernel lock (fcntl.flock), so a run killed with -9 leaves nothing stale behind, with the holder's
pid, start time and command line written in the file for the next one to name.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import IO

# in Snakemake's own folder of the working directory: one per folder a run writes into
LOCK_FILE = ".snakemake/svar-run.lock"


class FolderBusy(RuntimeError):
    """Another Snakemake process is running in this folder."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        return f"pid {info['pid']} (since {since}: {info['command']})"
    except (OSError, ValueError, KeyError):  # the holder has locked it and not yet written
        return "another process"


def _busy_message(folder: Path, path: Path) -> str:
    return (
        f"{folder}: a Snakemake run is already running in this folder, {_holder(path)}. "
        "Wait for it to finish (or stop it), then run again; a second run now would start its jobs "
        "a second time. To run another config beside it, use another folder (--directory)."
    )


def hold(folder: str | os.PathLike = ".") -> IO[str]:
    """Takes the folder's run lock and returns its open file: closing it (or its garbage
    collection, or the process ending however it ends) releases it. Raises FolderBusy naming the
    holder when another open file has it, in this process or another."""
    folder = Path(folder).resolve()
    path = folder / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # not inherited by the jobs (PEP 446)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise FolderBusy(_busy_message(folder, path)) from None
    handle.truncate(0)
    handle.write(json.dumps({"pid": os.getpid(), "since": time.time(), "command": " ".join(sys.argv)}))
    handle.flush()
    return handle


def running_here(folder: str | os.PathLike = ".") -> str | None:
    """The message naming the run that holds the folder's lock, or None when none does (a dry
    run asks this and goes on: it changes nothing)."""
    path = Path(folder).resolve() / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _busy_message(Path(folder).resolve(), path)
    finally:
        os.close(fd)
    return None
