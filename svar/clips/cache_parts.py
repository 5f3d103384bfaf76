"""What a part of the shared clip cache holds, and the files it lies in.

One cache per (dataset, part, cache options). Part `train` holds the videos outside the test list
of `dataset.split` (the training pool and the validation videos): the frames a training clip is
drawn from (`ClipSpec.cached_indices`) and those of the centre view validation scores
(`ClipSpec.val_indices`: for dense clips one of the training clips, so nothing more). Part
`test` holds the test list: the frames of the `evaluate.clips` test clips. Which frames a video
keeps is known before decoding (its frame count is in the manifest), from the clip-sampling
mode (svar.clips.sampling), which also names the keys that decide them (`cache_reads`). Parts
`clip_finetune_train` and `clip_finetune_test` hold the same videos in clip_finetune's own clips
(svar.clips.parts, svar.clips.finetune_clips: its `frames` segments over the whole video, at its
`cache_size`), decided by its keys, so the student methods' parts are untouched by them.

A part is written as shards (svar.clips.shards): each an .npy file of uint8 [rows, H, W, 3],
its videos one after the other, and beside it an index (.index.npz: the videos, their frame
counts, the frames each keeps, the options). `FORMAT` is the version of both layouts and of the
receipt (svar.clips.receipt).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from ..image import resize_cover
from ..video import iter_videos, read_frames
from .finetune_clips import CACHE_KEYS as FINETUNE_CACHE_KEYS, finetune_spec
from .parts import PARTS, part_of  # noqa: F401 (PARTS: the workflow's part names)
from .sampling import CLIP_SAMPLINGS, ClipSpec

# bump when decoding, resizing or the layout of a shard or of the receipt changes: older caches
# are then rebuilt (the shard key) or refused (the receipt)
FORMAT = 1


def decode_one(args) -> np.ndarray:
    """Frames `indices` of one video, resized to cover `cache_size` and centre-cropped to it."""
    path, indices, cache_size = args
    frames = read_frames(path, indices)
    return resize_cover(torch.from_numpy(frames), cache_size).permute(0, 2, 3, 1).numpy()


def cache_reads(config: dict, part: str) -> tuple[str, ...]:
    """The config keys that decide which pixels a part's cache holds (its options): the clips'
    sampling, length and cached frames (the mode's own key), their size, the split whose test list divides the
    parts, and for the test part the number of test clips. Nothing else (not the crop size, the
    method or the training settings): changing those reuses the cache."""
    section, videos = part_of(part)
    if section == "student":
        mode = CLIP_SAMPLINGS[config["student"]["sampling"]]
        keys = ("student.sampling", "student.frames", "student.cache_size") + mode.reads
    else:
        keys = FINETUNE_CACHE_KEYS
    return keys + ("dataset.split",) + (("evaluate.clips",) if videos == "test" else ())


def part_spec(options: dict, part: str) -> ClipSpec:
    """The clips (no crop) a part's cache options describe."""
    section, _ = part_of(part)
    return ClipSpec.from_options(options["student"]) if section == "student" else finetune_spec(options[section])


def kept_frames(options: dict, part: str, n_frames: int) -> np.ndarray:
    """The sorted frame numbers of an n-frame video that a part's cache keeps."""
    spec = part_spec(options, part)
    if part_of(part)[1] == "train":
        return spec.training_frames(n_frames)  # dense: the validation view within the cached frames
    return spec.test_frames(n_frames, int(options["evaluate"]["clips"]))


def part_videos(manifest, part: str, split: int):
    """The manifest rows of a part, by video id: the test list of `split`, or every other video."""
    column = f"split{split}"
    if column not in manifest.columns:
        raise ValueError(f"dataset.split: the manifest has no official split {split} (columns: {list(manifest.columns)})")
    test = manifest[column] == "test"
    return manifest[test if part_of(part)[1] == "test" else ~test].sort_values("video_id").reset_index(drop=True)


def decode_frames(paths, indices: list, cache_size, workers: int = 1, desc: str = "decode frames") -> list:
    """Frames `indices[i]` of video `paths[i]` at `cache_size`, uint8 [len, H, W, 3] each, in memory."""
    jobs = [(path, k, tuple(cache_size)) for path, k in zip(paths, indices)]
    return list(iter_videos(decode_one, jobs, workers, desc))


def starts_of(lengths: np.ndarray) -> np.ndarray:
    """Where each of consecutive blocks of `lengths` rows starts."""
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths


def index_path(frames_path) -> Path:
    """A shard's index file, beside its frames: <shard>.index.npz."""
    frames_path = Path(frames_path)
    return frames_path.with_name(frames_path.stem + ".index.npz")


def npy_header(shape) -> bytes:
    """The .npy header of a C-ordered uint8 array of `shape` (what np.save writes before the data)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def read_index(path) -> dict:
    """A shard's index (beside `path`) as arrays; a clear error when it is missing or corrupt."""
    index = index_path(path)
    try:
        with np.load(index, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError) as exc:
        raise ValueError(f"{index}: the clip cache shard's index is missing or corrupt ({exc}); delete {path} and "
                         "rerun (rule clip_cache_shard)") from exc

