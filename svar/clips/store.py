"""The cached frames a training or evaluation job reads: `ClipStore` (a set of videos' frames,
from the shared cache's memory-mapped shards or decoded into memory) and `ClipCache` (the rows
training clips are drawn from), and reading clips from them.

`ClipStore.open` takes a part's receipt (rule clip_cache; svar.clips.receipt checks each shard
against it) and memory-maps its shards, decoding nothing; `clip_cache.mode: memory` (small
datasets) decodes the same frames into memory inside each job instead (`memory_train_store`,
`memory_test_store`), so the trainer and the evaluator read frames one way. A training clip's
frames are drawn from the trainer's CPU generator (`clip_indices`: the draw, where the
clip-sampling mode places the clip) apart from reading them (`read_clips`), so the trainer can
make every draw in order and read the next batch in the background.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from ..readers import read_json
from .cache_parts import FORMAT, decode_frames, part_spec, read_index, starts_of
from .receipt import check_shards
from .sampling import ClipSpec


@dataclass
class ClipCache:
    """The frames training clips of N videos are drawn from: cached frame j of video i is row
    `rows[starts[i] + j]` of `frames` (uint8 [rows, H, W, 3]: an array, or a ClipStore's
    memory-mapped shards), or row `starts[i] + j` itself when `rows` is None."""

    frames: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.starts)


def clip_indices(cache: ClipCache, rows: torch.Tensor, spec: ClipSpec, generator: torch.Generator) -> torch.Tensor:
    """[len(rows), frames] rows of `cache.frames` for one training clip of each video in `rows`:
    one uniform draw a video, placed among its cached frames by the clip-sampling mode
    (ClipSampling.train_positions)."""
    starts = torch.from_numpy(np.asarray(cache.starts))[rows]
    lengths = torch.from_numpy(np.asarray(cache.lengths))[rows]
    u = torch.rand(len(rows), generator=generator)
    return starts[:, None] + spec.train_positions(lengths, u, torch.arange(spec.frames))


def read_clips(cache: ClipCache, indices: torch.Tensor) -> torch.Tensor:
    """uint8 [N, frames, H, W, 3]: the clips whose rows `clip_indices` drew ([N, frames]), reading
    only those frames of the cache. Draws nothing."""
    idx = indices.numpy().reshape(-1)
    if cache.rows is not None:
        idx = cache.rows[idx]
    return torch.from_numpy(np.ascontiguousarray(cache.frames[idx])).view(*indices.shape, *cache.frames.shape[1:])


def take_clips(cache: ClipCache, rows: torch.Tensor, spec: ClipSpec, generator: torch.Generator) -> torch.Tensor:
    """uint8 [len(rows), frames, H, W, 3]: one training clip of each video in `rows` (its frames
    drawn by `clip_indices`), reading only those frames of the cache."""
    return read_clips(cache, clip_indices(cache, rows, spec, generator))


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
        check_shards(receipt, receipt_path)
        arrays, ids, n_frames, lengths, kept = [], [], [], [], []
        h, w = part_spec(receipt["options"], receipt["part"]).cache_size
        for shard in receipt["shards"]:
            index = read_index(shard["frames"])
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
    kept = [spec.training_frames(int(n), video_id in trained_set, video_id in val_set)
            for video_id, n in zip(rows["video_id"], rows["frames"])]
    return ClipStore.decode(rows, kept, spec.cache_size, workers, desc="decode training clips")


def memory_test_store(manifest, test_ids, spec: ClipSpec, n_clips: int, workers: int = 1) -> ClipStore:
    """clip_cache.mode memory: the frames of `n_clips` test clips of each test video, in memory."""
    rows = manifest.set_index("video_id").loc[list(test_ids)].reset_index()
    kept = [spec.test_frames(int(n), n_clips) for n in rows["frames"]]
    return ClipStore.decode(rows, kept, spec.cache_size, workers, desc="decode test clips")
