"""The shared clip cache: every frame a training or an evaluation job reads, decoded once.

One cache per (dataset, part, cache options). Part `train` holds the videos outside the test list
of `dataset.split` (the training pool and the validation videos): the frames a training clip is
drawn from (`ClipSpec.cached_indices`) and those of the centre view validation scores
(`ClipSpec.val_indices`: for dense clips one of the training clips, so nothing more). Part
`test` holds the test list: the frames of the `evaluate.clips` test clips. Which frames a video
keeps is known before decoding (its frame count is in the manifest), so a shard job
(`svar clip-cache`, rule clip_cache_shard) writes its every-N-th video into one .npy file of
known shape, video by video with plain file writes (the pages go to the OS's cache, not to the
job's memory), flushed and recorded in a progress file every chunk of videos, so a killed job
resumes at its first unfinished chunk and ends with the same bytes. How many decoding workers it
runs and how large a chunk is follow its memory request, less what it measures it holds
(`ShardMemory`), and records its size and checksum (svar.receipts). The gather (`svar
clip-cache-gather`, rule clip_cache: svar.cache_receipt) checks the shards and writes a receipt
with each one's size and checksum; `train` and `evaluate` take the receipt as input, check each
shard against it and read the shards as read-only memory maps, decoding nothing.

`clip_cache.mode: memory` (small datasets) decodes the same frames into memory inside each job
instead; both give a `ClipStore`, so the trainer and the evaluator read frames one way.
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
import torch

from .atomic import atomic_path, write_json
from .clips import ClipCache, ClipSpec
from .image import resize_cover
from .readers import read_json
from .receipts import record
from .video import decoder_versions, iter_videos, read_frames

log = logging.getLogger(__name__)

PARTS = ("train", "test")
# bump when decoding, resizing or the layout of a shard or of the receipt changes: older caches
# are then rebuilt (the shard key) or refused (the receipt)
FORMAT = 1


def _decode_one(args) -> np.ndarray:
    """Frames `indices` of one video, resized to cover `cache_size` and centre-cropped to it."""
    path, indices, cache_size = args
    frames = read_frames(path, indices)
    return resize_cover(torch.from_numpy(frames), cache_size).permute(0, 2, 3, 1).numpy()


def cache_reads(config: dict, part: str) -> tuple[str, ...]:
    """The config keys that decide which pixels a part's cache holds (its options): the clips'
    sampling, length and cached frames, their size, the split whose test list divides the
    parts, and for the test part the number of test clips. Nothing else (not the crop size, the
    method or the training settings): changing those reuses the cache."""
    if part not in PARTS:
        raise ValueError(f"clip cache part {part!r} is not one of {PARTS}")
    dense = config["student"]["sampling"] == "dense"
    keys = ("student.sampling", "student.frames", "student.cache_size",
            "student.stride" if dense else "student.cache_frames", "dataset.split")
    return keys + (("evaluate.clips",) if part == "test" else ())


def _clip_spec(options: dict) -> ClipSpec:
    s = options["student"]
    return ClipSpec(s["sampling"], int(s["frames"]), int(s.get("stride", 1)), int(s.get("cache_frames", s["frames"])),
                    tuple(int(v) for v in s["cache_size"]), min(int(v) for v in s["cache_size"]))


def kept_frames(options: dict, part: str, n_frames: int) -> np.ndarray:
    """The sorted frame numbers of an n-frame video that a part's cache keeps."""
    spec = _clip_spec(options)
    if part == "train":
        wanted = [spec.cached_indices(n_frames), spec.val_indices(n_frames)]  # dense: the latter within the former
    else:
        n_clips = int(options["evaluate"]["clips"])
        wanted = [spec.test_indices(n_frames, c, n_clips) for c in range(n_clips)]
    return np.unique(np.concatenate(wanted))


def part_videos(manifest, part: str, split: int):
    """The manifest rows of a part, by video id: the test list of `split`, or every other video."""
    column = f"split{split}"
    if column not in manifest.columns:
        raise ValueError(f"dataset.split: the manifest has no official split {split} (columns: {list(manifest.columns)})")
    test = manifest[column] == "test"
    return manifest[test if part == "test" else ~test].sort_values("video_id").reset_index(drop=True)


def shard_videos(manifest, part: str, options: dict, shard: int, shards: int):
    """The videos of one shard: every `shards`-th video of the part, from the `shard`-th."""
    from .teacher.features import shard_rows

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


def decode_frames(paths, indices: list, cache_size, workers: int = 1, desc: str = "decode frames") -> list:
    """Frames `indices[i]` of video `paths[i]` at `cache_size`, uint8 [len, H, W, 3] each, in memory."""
    jobs = [(path, k, tuple(cache_size)) for path, k in zip(paths, indices)]
    return list(iter_videos(_decode_one, jobs, workers, desc))


def starts_of(lengths: np.ndarray) -> np.ndarray:
    """Where each of consecutive blocks of `lengths` rows starts."""
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths


def index_path(frames_path) -> Path:
    """A shard's index file, beside its frames: <shard>.index.npz."""
    frames_path = Path(frames_path)
    return frames_path.with_name(frames_path.stem + ".index.npz")


def _header(shape) -> bytes:
    """The .npy header of a C-ordered uint8 array of `shape` (what np.save writes before the data)."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


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
    h, w = (int(v) for v in options["student"]["cache_size"])
    total, row_bytes = int(lengths.sum()), h * w * 3
    header = _header((total, h, w, 3))
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
    first = _decode_one(jobs[0])
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
    rest = iter_videos(_decode_one, jobs[1:], processes, desc, window=WINDOW)
    return itertools.chain([first], rest), chunk


def _write_progress(path: Path, key: str, videos: int) -> None:
    write_json(path, {"key": key, "videos": videos})


def gather(shard_files, out) -> dict:
    """The receipt of a part's shards (svar.cache_receipt.gather)."""
    from .cache_receipt import gather as gather_shards

    return gather_shards(shard_files, out)


def _read_index(path) -> dict:
    index = index_path(path)
    try:
        with np.load(index, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError) as exc:
        raise ValueError(f"{index}: the clip cache shard's index is missing or corrupt ({exc}); delete {path} and "
                         "rerun (rule clip_cache_shard)") from exc


class ShardedFrames:
    """Rows of several uint8 [rows, H, W, 3] arrays (shards, or one array) read as one: indexing
    by an array of row numbers reads only those rows."""

    def __init__(self, arrays: list, frame_shape):
        self.arrays = arrays
        self.offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
        self.shape = (int(self.offsets[-1]), *frame_shape)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        for s in np.unique(which):
            mask = which == s
            local = rows[mask] - self.offsets[s]
            order = np.argsort(local, kind="stable")  # a memory map reads fastest in file order
            out[np.flatnonzero(mask)[order]] = self.arrays[s][local[order]]
        return out


class ClipStore:
    """The cached frames of a set of videos: for each, the sorted frame numbers it holds and the
    rows they lie at. Opened from a receipt (memory-mapped shards) or decoded into memory."""

    def __init__(self, frames: ShardedFrames, video_ids, n_frames, lengths, kept, source: str,
                 options: dict | None = None, part: str | None = None):
        """Video i holds frames kept[starts[i] : starts[i] + lengths[i]], at those rows of `frames`."""
        self.frames, self.source, self.options, self.part = frames, source, options, part
        self.position = {v: i for i, v in enumerate(video_ids)}
        self.n_frames, self.lengths, self.kept = n_frames, lengths, kept
        self.starts = starts_of(lengths)

    def __len__(self) -> int:
        return len(self.position)

    @classmethod
    def open(cls, receipt_path) -> "ClipStore":
        """The cache a receipt (rule clip_cache) describes, its shards as read-only memory maps."""
        receipt = read_json(receipt_path, "clip cache receipt", "clip_cache")
        if receipt.get("format") != FORMAT:
            raise ValueError(f"{receipt_path}: clip cache format {receipt.get('format')}, this svar reads {FORMAT}; "
                             "rebuild it (rule clip_cache)")
        from .cache_receipt import check_shards

        check_shards(receipt, receipt_path)
        arrays, ids, n_frames, lengths, kept = [], [], [], [], []
        h, w = (int(v) for v in receipt["options"]["student"]["cache_size"])
        for shard in receipt["shards"]:
            index = _read_index(shard["frames"])
            rows = int(index["shape"][0])
            if rows:
                try:
                    array = np.load(shard["frames"], mmap_mode="r")
                except (OSError, ValueError) as exc:
                    raise ValueError(f"{shard['frames']}: unreadable clip cache shard ({exc}); delete it and rerun "
                                     "(rule clip_cache_shard)") from exc
                if array.shape != (rows, h, w, 3) or array.dtype != np.uint8:
                    raise ValueError(f"{shard['frames']}: shape {array.shape} {array.dtype}, its index says "
                                     f"{(rows, h, w, 3)} uint8; delete it and rerun (rule clip_cache_shard)")
            else:
                array = np.zeros((0, h, w, 3), dtype=np.uint8)
            arrays.append(array)
            ids += list(index["video_id"])
            n_frames.append(index["frames"])
            lengths.append(index["lengths"])
            kept.append(index["kept"])
        lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        return cls(ShardedFrames(arrays, (h, w, 3)), ids, np.concatenate(n_frames), lengths,
                   np.concatenate(kept), f"the clip cache {receipt_path}", receipt["options"], receipt["part"])

    @classmethod
    def decode(cls, rows, kept: list, cache_size, workers: int = 1, desc: str = "decode clips") -> "ClipStore":
        """Decode `kept[i]` (sorted frame numbers) of manifest row i into memory."""
        h, w = (int(v) for v in cache_size)
        clips = decode_frames(rows["path"], kept, (h, w), workers, desc)
        lengths = np.array([len(k) for k in kept], dtype=np.int64)
        frames = np.concatenate(clips) if clips else np.zeros((0, h, w, 3), dtype=np.uint8)
        return cls(ShardedFrames([frames], (h, w, 3)), list(rows["video_id"]), rows["frames"].to_numpy(np.int64),
                   lengths, np.concatenate(kept) if kept else np.zeros(0, np.int64), "memory")

    def _position(self, video_id) -> int:
        if video_id not in self.position:
            raise ValueError(f"{self.source} holds no video {video_id!r}: it was built for another part, split or "
                             "manifest; rebuild it (rule clip_cache)")
        return self.position[video_id]

    def rows_of(self, video_id, frame_numbers) -> np.ndarray:
        """The rows holding frames `frame_numbers` of a video; a clear error when the cache lacks them."""
        i = self._position(video_id)
        start, length = int(self.starts[i]), int(self.lengths[i])
        held = self.kept[start:start + length]
        at = np.searchsorted(held, frame_numbers)
        if (at >= length).any() or (held[np.minimum(at, length - 1)] != frame_numbers).any():
            raise ValueError(f"{self.source} lacks frames {sorted(set(np.asarray(frame_numbers).tolist()) - set(held.tolist()))} "
                             f"of video {video_id!r}: it was built for other clip settings (options "
                             f"{json.dumps(self.options, sort_keys=True)}); rebuild it (rule clip_cache)")
        return start + at

    def video_frames(self, video_id) -> int:
        """The video's frame count (the manifest's, when the cache was built)."""
        return int(self.n_frames[self._position(video_id)])

    def training_cache(self, video_ids, spec: ClipSpec) -> ClipCache:
        """The frames training clips are drawn from (`spec.cached_indices`) of `video_ids`, as the
        trainer's ClipCache (video i of `video_ids` at its rows i)."""
        rows = [self.rows_of(v, spec.cached_indices(self.video_frames(v))) for v in video_ids]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        flat = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        return ClipCache(self.frames, starts_of(lengths), lengths, flat)

    def view_clips(self, video_ids, spec: ClipSpec, clip: int, n_clips: int) -> torch.Tensor:
        """uint8 [N, frames, H, W, 3] at the cache size: test clip `clip` of `n_clips` of each video."""
        return self._clips(video_ids, spec, lambda n: spec.test_indices(n, clip, n_clips))

    def validation_clips(self, video_ids, spec: ClipSpec) -> torch.Tensor:
        """uint8 [N, frames, H, W, 3] at the cache size: the clip validation scores (`spec.val_indices`)."""
        return self._clips(video_ids, spec, spec.val_indices)

    def _clips(self, video_ids, spec: ClipSpec, frames_of) -> torch.Tensor:
        rows = [self.rows_of(v, frames_of(self.video_frames(v))) for v in video_ids]
        if not rows:
            return torch.zeros((0, spec.frames, *self.frames.shape[1:]), dtype=torch.uint8)
        return torch.from_numpy(self.frames[np.concatenate(rows)]).view(len(rows), spec.frames, *self.frames.shape[1:])


def memory_train_store(manifest, trained_ids, val_ids, spec: ClipSpec, workers: int = 1) -> ClipStore:
    """clip_cache.mode memory: the frames one training run reads, decoded in memory — the cached
    frames of the videos it trains on, the centre view of its validation videos."""
    trained, val = list(dict.fromkeys(trained_ids)), list(dict.fromkeys(val_ids))
    trained_set, val_set = set(trained), set(val)
    rows = manifest.set_index("video_id").loc[trained + [v for v in val if v not in trained_set]].reset_index()
    kept = []
    for video_id, n in zip(rows["video_id"], rows["frames"]):
        wanted = [spec.cached_indices(int(n))] if video_id in trained_set else []
        wanted += [spec.val_indices(int(n))] if video_id in val_set else []
        kept.append(np.unique(np.concatenate(wanted)))
    return ClipStore.decode(rows, kept, spec.cache_size, workers, desc="decode training clips")


def memory_test_store(manifest, test_ids, spec: ClipSpec, n_clips: int, workers: int = 1) -> ClipStore:
    """clip_cache.mode memory: the frames of `n_clips` test clips of each test video, in memory."""
    rows = manifest.set_index("video_id").loc[list(test_ids)].reset_index()
    kept = [np.unique(np.concatenate([spec.test_indices(int(n), c, n_clips) for c in range(n_clips)]))
            for n in rows["frames"]]
    return ClipStore.decode(rows, kept, spec.cache_size, workers, desc="decode test clips")
