"""Where a result's code came from: the commit of the checkout svar runs from, and whether
its tracked files differ from that commit (a dirty tree cannot be reproduced from the commit)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

# the checkout this package is part of (the workflow's rules import svar from there)
CHECKOUT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(CHECKOUT), *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def source_version() -> dict:
    """{"git_commit": sha or "unknown", "git_dirty": True / False / None (unknown)} of svar's checkout."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit.strip() if commit else "unknown",
            "git_dirty": None if status is None else bool(status.strip())}
