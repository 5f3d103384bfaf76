"""What the workflow checks before it schedules anything (workflow/rules/guard.smk's
guard_outputs), and what it does about a file changed after it was written.

Snakemake decides what to run from file times and its own records, so a file damaged in place
looks up to date, and a missing intermediate file whose consumers are up to date is not made
again. Each svar output has a record of its size and checksum (svar.receipts); these functions
compare files with their records and turn a difference into something Snakemake acts on: the
file moved aside (a missing output is made again), or a clip cache receipt made stale (its
record, a target of rule all, removed: the gather runs again and needs the missing shard).
`warn` is Snakemake's logger.warning; with dry_run nothing is moved or removed, only said.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .clips.receipt import stale_parts
from .receipts import check, records_under


def move_aside(path, how: str, rule: str | None, warn, dry_run: bool, suffix: str = "corrupt") -> None:
    """Move a damaged output to <path>.<suffix>, so that `rule` (None: the one that makes it) makes it again."""
    by = f" (rule {rule})" if rule else ""
    if dry_run:
        warn(f"{path}: {how}; a run moves it aside and makes it again{by}")
    else:
        os.replace(path, f"{path}.{suffix}")
        warn(f"{path}: {how}; moved to {path}.{suffix}, and made again{by}")


def stale_receipt(receipt, wanted_shards: list[str]) -> list[tuple[str, str]]:
    """(file, how) of what makes a clip cache receipt stale: a shard or index it names that is
    missing or changed (svar.clips.receipt.stale_parts), or (receipt, why) when it cannot be
    read, names no checksums, or names other shards than `wanted_shards` (clip_cache.shards
    changed: the same pixels in another number of files)."""
    stale = stale_parts(receipt)
    if stale:
        return stale
    named = [shard["frames"] for shard in json.loads(Path(receipt).read_text())["shards"]]
    if named != list(wanted_shards):
        return [(str(receipt), f"holds {len(named)} shards, clip_cache.shards is {len(wanted_shards)}")]
    return []


def guard_clip_cache(parts, warn, dry_run: bool) -> None:
    """For each (receipt, its record, the shard files clip_cache.shards asks for) of `parts`: a
    changed shard or index is moved aside, and a stale receipt's record removed, so that the
    next run rebuilds the shard and the gather (and the jobs that read the part)."""
    for receipt, record, wanted in parts:
        if not os.path.exists(receipt):
            continue
        stale = stale_receipt(receipt, wanted)
        for path, how in stale:
            if path == str(receipt):
                warn(f"{receipt}: {how}")
            elif os.path.exists(path):
                move_aside(path, how, "clip_cache_shard", warn, dry_run)
            else:
                warn(f"{path}: missing; a run rebuilds it (rule clip_cache_shard)")
        if stale and os.path.exists(record):
            if dry_run:
                warn(f"{receipt}: stale; a run makes it again (rule clip_cache)")
            else:
                os.remove(record)
                warn(f"{receipt}: stale (removed its record {record}); rule clip_cache makes it again")


def guard_records(results, skip, warn, dry_run: bool) -> None:
    """Every file with a record under `results` but those in `skip` (files, or folders): one
    of another size, or changed in place, is moved aside (<file>.changed) so that the rule that
    makes it runs again, with what reads it — final targets too (metrics.csv, summary.csv, the
    report). A missing one is left to Snakemake (a target, or made when something needs it)."""
    skip = {str(p) for p in skip}
    folders = [Path(p) for p in skip if Path(p).is_dir()]
    for path in records_under(results):
        if str(path) in skip or any(f in path.parents for f in folders) or not path.exists():
            continue
        how = check(path, checksum=False)
        if how:
            move_aside(path, f"{how} since it was written", None, warn, dry_run, suffix="changed")
