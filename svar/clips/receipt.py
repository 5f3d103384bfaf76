"""The shared clip cache's receipt: which shards make a part's cache, and each one's size and checksum.

`gather` (`svar clip-cache-gather`, rule clip_cache) takes exactly the shards 0..N-1 of one
`clip_cache.shards` N (a missing or an extra one is refused, named), checks each against the
record its shard job wrote (svar.receipts) and writes the receipt with each shard's and index's
size, SHA-256 and modification time. `check_shards` is what a train or evaluate job runs on the
receipt it is given before it reads a frame: a shard or index that is not the one the receipt
names (missing, another size, another checksum: zeroed in place) is refused, named.
`stale_parts` is the workflow's cheap form (guard.smk's guard_outputs, before every run): sizes,
and checksums only of files whose modification time changed.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from ..atomic import write_json
from ..receipts import check, difference, sha256
from .cache_parts import FORMAT, index_path, npy_header, read_index

SHARD_NAME = re.compile(r"shard_(\d+)_of_(\d+)\.npy$")


def _shard_number(path, index: dict) -> tuple[int, int]:
    """(shard, shards) of a shard file: its index's (written since svar recorded it), else its name's."""
    if "shard" in index:
        shard, shards = (int(v) for v in index["shard"])
        return shard, shards
    m = SHARD_NAME.search(str(path))
    if m is None:
        raise ValueError(f"{path}: not a clip cache shard's name (shard_III_of_NNN.npy) and its index does not say "
                         "which shard it is; rebuild it (rule clip_cache_shard)")
    return int(m.group(1)), int(m.group(2))


def _check_complete(shard_files, numbers) -> None:
    """Exactly shards 0..N-1 of one N, each once; the missing ones named by their file (beside
    the first shard, as rule clip_cache_shard names them)."""
    n = numbers[0][1]
    for path, (shard, shards) in zip(shard_files, numbers):
        if shards != n:
            raise ValueError(f"{path} is shard {shard} of {shards}, {shard_files[0]} one of {n}: give the {n} shards "
                             "of one clip_cache.shards")
    seen = [shard for shard, _ in numbers]
    twice = sorted({s for s in seen if seen.count(s) > 1})
    if twice:
        raise ValueError(f"clip cache shard {twice[0]} of {n} given twice; give each of the {n} shards once")
    first = os.fspath(shard_files[0])
    missing = [SHARD_NAME.sub(f"shard_{i:03d}_of_{n:03d}.npy", first) for i in range(n) if i not in seen]
    if missing:
        raise ValueError(f"{len(missing)} of {n} clip cache shards missing: {', '.join(missing)} (rule "
                         "clip_cache_shard makes them); give all of them")


def gather(shard_files, out) -> dict:
    """Check the shards of one cache (same part and options, each complete, all of them, each as
    its job wrote it) and write the receipt `train` and `evaluate` read: the shard files, their
    videos, frames, bytes and checksums."""
    if not shard_files:
        raise ValueError("no clip cache shards given")
    indices = [read_index(path) for path in shard_files]
    first = (str(indices[0]["part"]), str(indices[0]["options"]))
    for path, index in zip(shard_files, indices):
        meta = (str(index["part"]), str(index["options"]))
        if meta != first:
            raise ValueError(f"{path}: a shard of another cache (part, options {meta}) than {shard_files[0]} "
                             f"({first}); rebuild it (rule clip_cache_shard)")
        shape = tuple(int(v) for v in index["shape"])
        size, expected = os.path.getsize(path), len(npy_header(shape)) + int(np.prod(shape))
        if size != expected:
            raise ValueError(f"{path}: {size} bytes, expected {expected} for {shape[0]} frames; the shard is truncated: "
                             "delete it and rerun (rule clip_cache_shard)")
    _check_complete(shard_files, [_shard_number(p, i) for p, i in zip(shard_files, indices)])
    shards = []
    for path, index in zip(shard_files, indices):
        entry = {"frames": str(path), "index": str(index_path(path)), "videos": len(index["video_id"]),
                 "rows": int(index["shape"][0])}
        for key, file in (("", path), ("index_", index_path(path))):
            how = check(file)  # against the record its shard job wrote (none: a shard of an older svar)
            if how is not None:
                raise ValueError(f"{file}: {how} since rule clip_cache_shard wrote it; delete it and rerun (rule "
                                 "clip_cache_shard makes it again)")
            st = os.stat(file)
            entry |= {f"{key}bytes": st.st_size, f"{key}sha256": sha256(file), f"{key}mtime_ns": st.st_mtime_ns}
        shards.append(entry)
    receipt = {"format": FORMAT, "part": first[0], "options": json.loads(first[1]), "shards": shards,
               "videos": sum(s["videos"] for s in shards), "rows": sum(s["rows"] for s in shards),
               "bytes": sum(s["bytes"] for s in shards)}
    write_json(out, receipt)
    return receipt


def _parts(receipt: dict):
    """(file, its entry as a record: size, sha256, mtime_ns) of every shard and index a receipt names."""
    for shard in receipt.get("shards", []):
        for key, file in (("", shard["frames"]), ("index_", shard["index"])):
            yield file, {"size": shard.get(f"{key}bytes"), "sha256": shard.get(f"{key}sha256"),
                         "mtime_ns": shard.get(f"{key}mtime_ns")}


def check_shards(receipt: dict, receipt_path) -> None:
    """Refuse a cache whose shards are not the ones its receipt names: each shard's and index's
    size and checksum (SHA-256, read in full: its cost is in docs/reproducibility.md) against the receipt."""
    for file, expected in _parts(receipt):
        if expected["sha256"] is None:
            raise ValueError(f"{receipt_path}: made by an svar that did not record its shards' checksums; rerun the "
                             "workflow (it remakes the receipt) or `svar clip-cache-gather`")
        how = difference(file, expected)
        if how is not None:
            raise ValueError(f"{file}: {how} since {receipt_path} was written: the clip cache shard changed after "
                             "it was made, and its frames are not trusted; rerun the workflow, which rebuilds it "
                             "(rule clip_cache_shard), or restore it (dvc checkout)")


def stale_parts(receipt_path) -> list[tuple[str, str]]:
    """(file, how it differs) of each shard or index a receipt names that is not as the receipt
    says, cheaply: sizes, and checksums only of files whose modification time changed; a receipt
    without checksums (an older svar's) or that cannot be read is stale as a whole."""
    try:
        receipt = json.loads(open(receipt_path).read())
        parts = list(_parts(receipt))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [(str(receipt_path), f"cannot be read ({exc})")]
    if any(expected["sha256"] is None for _, expected in parts):
        return [(str(receipt_path), "names no checksums (made by an older svar)")]
    return [(file, how) for file, expected in parts if (how := difference(file, expected, checksum=False))]
