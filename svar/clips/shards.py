"""Building the shared clip cache's shards: one job decodes every N-th video of a part.

A shard job (`svar clip-cache`, rule clip_cache_shard) writes its videos' kept frames
(svar.clips.cache_parts.kept_frames) into one .npy file of known shape, video by video with plain
file writes (the pages go to the OS's cache, not to the job's memory), flushed and recorded in a
progress file every chunk of videos, so a killed job resumes at its first unfinished chunk and
ends with the same bytes. How many decoding workers it runs and how large a chunk is follow its
memory request, less what it measures it holds (`ShardMemory`), and records its size and
checksum (svar.receipts). The gather (svar.clips.receipt) then writes the part's receipt, and
train and evaluate jobs read the shards through svar.clips.store.ClipStore.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_json
from ..receipts import record
from ..teacher.features import shard_rows
from ..video import decoder_versions, iter_videos
from .cache_parts import FORMAT, decode_one, index_path, kept_frames, npy_header, part_spec, part_videos, starts_of

log = logging.getLogger(__name__)


def shard_videos(manifest, part: str, options: dict, shard: int, shards: int):
    """The videos of one shard: every `shards`-th video of the part, from the `shard`-th (as the
    teacher's shards: svar.teacher.features.shard_rows)."""
    videos = part_videos(manifest, part, int(options["dataset"]["split"]))
    return videos.iloc[shard_rows(len(videos), shard, shards)].reset_index(drop=True)


def shard_key(videos, options: dict, part: str) -> str:
    """A hash of what decides a shard's bytes: its videos (id, path, frame count, file size and
    modification time), the options, the part, the decoders and the formats. A progress file
    with another key is another shard's: the shard starts again."""
    stamps = []
    for r in videos.itertuples():
        try:
            st = os.stat(r.path)
            stamp = [st.st_size, st.st_mtime_ns]
        except OSError:
            stamp = None
        stamps.append([r.video_id, str(r.path), int(r.frames), stamp])
    body = {"format": FORMAT, "part": part, "options": options,
            "decoders": decoder_versions(), "videos": stamps}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()



# decoded videos that may wait for the writer per decoding worker (svar.video.iter_videos' window)
WINDOW = 2


def rss_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, MB: /proc's VmRSS and VmHWM (Linux).
    Not getrusage's ru_maxrss: a process keeps the largest of its parent's at the fork it was
    started from (a shard job started by a 2 GB pytest read 900 MB above its own peak)."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "VmHWM")))
        now, peak = (int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))
    except (OSError, KeyError, ValueError):
        import resource

        now = peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    return now, max(now, peak)


# what a process maps in of its libraries' pages when it exits, as a share of its RSS: unloading
# torch and decord2 (with the CUDA libraries it loads) touched +12-18% of file-backed pages here
# (torch alone 509 -> 634 MB, torch and decord 931 -> 1103; a shard job's own process 1073 -> 1198,
# its two workers 1053 -> 1132 and 1087 -> 1180: /proc sampled every 5 ms)
TEARDOWN = 0.2


@dataclass
class ShardMemory:
    """What a shard job's memory holds, MB, measured in its own process after it decoded its first
    video: its fixed cost once the libraries and decoders are loaded (a decoding worker loads the
    same ones), the most a decode adds while it runs (the first video's, scaled to the shard's
    largest by kept frames × source pixels), and the largest video's cached frames."""

    fixed: float
    decode: float
    video: float

    def process(self) -> float:
        """What a process with the decoders loaded holds at most, decoding aside: its fixed cost and
        the library pages it maps in when it exits (`TEARDOWN`)."""
        return self.fixed * (1 + TEARDOWN)

    def decoder(self) -> float:
        """What one decoding process holds at most."""
        return self.process() + self.decode

    def plan(self, memory_mb: float, workers: int) -> tuple[int, int]:
        """(decoding processes, videos a chunk) that fit `memory_mb`: as many of `workers` worker
        processes beside this one as fit with the videos they hand over waiting here, else decoding
        in this process; the chunk (how many videos are written between two flushes to disk) as many
        videos as the rest holds, at least one, so that the pages not yet flushed fit too (a
        cgroup counts them)."""
        for k in range(workers, 1, -1):
            held = self.process() + k * self.decoder() + (WINDOW * k + 1) * self.video
            if held + self.video <= memory_mb:
                return k, int((memory_mb - held) // self.video)
        held = self.decoder() + self.video
        return 1, max(1, int((memory_mb - held) // max(self.video, 1e-6)))

    def floor(self) -> float:
        """The least this job holds: decoding in its own process, one video written at a time."""
        return self.decoder() + 2 * self.video


def build_shard(manifest, part: str, options: dict, shard: int, shards: int, out, chunk: int = 0,
                workers: int = 1, memory_mb: float = 2000, on_chunk=None) -> Path:
    """Decode one shard into `out` (.npy, uint8 [rows, H, W, 3]) and its index, resumably.

    The file is laid out in full first (its header and its size: a sparse file), beside the target
    as `.<name>.partial`; each chunk of `chunk` videos is decoded, written at its rows, flushed to
    disk and counted in `.<name>.partial.progress.json` (videos done). A restart with the same key
    continues after the last counted video, whatever its chunk size. At the end the index is
    written and the file renamed onto `out`. on_chunk(videos_done) is called after each chunk is
    recorded (tests kill the job there).

    Each video is written as soon as it is decoded. The job's whole memory (this process and its
    decoding workers) is kept within `memory_mb`: its first video is decoded in this process, which
    measures what that holds (`ShardMemory`), and the rest by up to `workers` processes, as many as
    fit; a chunk is as many videos as the rest of `memory_mb` holds (`chunk` > 0: that many)."""
    out = Path(out)
    videos = shard_videos(manifest, part, options, shard, shards)
    kept = [kept_frames(options, part, int(n)) for n in videos["frames"]]
    lengths = np.array([len(k) for k in kept], dtype=np.int64)
    starts = starts_of(lengths)
    h, w = part_spec(options, part).cache_size
    total, row_bytes = int(lengths.sum()), h * w * 3
    header = npy_header((total, h, w, 3))
    key = shard_key(videos, options, part)
    partial = out.with_name(f".{out.name}.partial")
    progress = partial.with_name(partial.name + ".progress.json")
    done = 0
    if partial.exists() and progress.exists():
        try:
            state = json.loads(progress.read_text())
            if state.get("key") == key and partial.stat().st_size == len(header) + total * row_bytes:
                done = min(int(state["videos"]), len(videos))
        except (OSError, ValueError, KeyError):
            done = 0
    if done == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as f:
            f.write(header)
            f.truncate(len(header) + total * row_bytes)
        _write_progress(progress, key, 0)
    else:
        log.info("%s: resuming after %d of %d videos", out, done, len(videos))
    log.info("%s: %d videos, %d frames (%.1f MB)", out, len(videos), total, total * row_bytes / 1e6)
    jobs = [(path, k, (h, w)) for path, k in zip(videos["path"][done:], kept[done:])]
    decoded, chunk = _decoding(jobs, videos.iloc[done:], row_bytes, workers, memory_mb, chunk,
                               f"clip cache {part} shard {shard + 1}/{shards}")
    with open(partial, "r+b") as f:
        f.seek(len(header) + int(starts[done]) * row_bytes)  # the videos lie in order, one after the other
        for i, clip in enumerate(decoded, start=done):
            # written as it comes: the job holds no chunk, only what its decoders have not handed over
            f.write(np.ascontiguousarray(clip, dtype=np.uint8).data)
            del clip
            if (i + 1 - done) % chunk == 0 or i + 1 == len(videos):
                f.flush()
                os.fsync(f.fileno())
                _write_progress(progress, key, i + 1)
                if on_chunk is not None:
                    on_chunk(i + 1)
    with atomic_path(index_path(out)) as tmp, open(tmp, "wb") as f:
        np.savez(f, video_id=np.array(videos["video_id"], dtype=str), frames=videos["frames"].to_numpy(np.int64),
                 lengths=lengths, kept=np.concatenate(kept) if kept else np.zeros(0, np.int64),
                 options=np.array(json.dumps(options, sort_keys=True)), part=np.array(part), key=np.array(key),
                 shape=np.array([total, h, w, 3], dtype=np.int64), shard=np.array([shard, shards], dtype=np.int64))
    os.replace(partial, out)
    progress.unlink(missing_ok=True)
    record(index_path(out))
    record(out)  # its size and checksum, which the gather copies into the receipt
    log.info("clip cache shard written: %s", out)
    return out


def _decoding(jobs: list, videos, row_bytes: int, workers: int, memory_mb: float, chunk: int, desc: str):
    """The decoded frames of `jobs` in order, and the chunk size: the first decoded here and
    measured, the rest by as many worker processes as `memory_mb` holds (`ShardMemory.plan`)."""
    if not jobs:
        return iter(()), max(1, int(chunk))
    before = rss_mb()[0]
    first = decode_one(jobs[0])
    now, peak = rss_mb()
    # a decode's cost grows with the frames it reads: kept frames × the source's pixels
    work = [len(k) * max(int(wd) * int(ht), 1) for (_, k, _), wd, ht in zip(jobs, videos["width"], videos["height"])]
    memory = ShardMemory(fixed=now, decode=max(peak - now, 0.0) * max(work) / max(work[0], 1),
                         video=max(len(k) for _, k, _ in jobs) * row_bytes / 2 ** 20)
    processes, fitted = memory.plan(memory_mb, workers)
    chunk = int(chunk) or fitted
    log.info("memory: this process %.0f MB once its decoders are loaded (%.0f MB before), a decode adds up to "
             "%.0f MB, a video's frames up to %.1f MB: %s, %d videos a chunk, within --memory-mb %.0f",
             now, before, memory.decode, memory.video,
             f"{processes} decoding workers" if processes > 1 else "decoding in this process", chunk, memory_mb)
    if memory.floor() > memory_mb:
        log.warning("--memory-mb %.0f (resources.clip_cache.mem_mb) is below what this job holds at least, %.0f MB "
                    "(measured above): it will exceed its request; raise resources.clip_cache.mem_mb to %d",
                    memory_mb, memory.floor(), math.ceil(memory.floor() / 100) * 100)
    rest = iter_videos(decode_one, jobs[1:], processes, desc, window=WINDOW)
    return itertools.chain([first], rest), chunk


def _write_progress(path: Path, key: str, videos: int) -> None:
    write_json(path, {"key": key, "videos": videos})

