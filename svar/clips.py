"""Decoded clips for the student: frames decoded once, resized, held as uint8 in memory.

Training samples T frames out of the cached ones with a random temporal offset and applies
augmentations on whole batches on the device; evaluation uses the centred uniform frames.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .teacher import resize_center_crop
from .video import read_frames, uniform_indices


# spawn, not fork: forking a process whose torch/OpenMP threads are running can deadlock
SPAWN = multiprocessing.get_context("spawn")


def _decode_one(args) -> np.ndarray:
    path, n_frames, k, size, offset = args
    frames = read_frames(path, uniform_indices(int(n_frames), k, offset))
    return resize_center_crop(torch.from_numpy(frames), size).permute(0, 2, 3, 1).numpy()


def decode_clips(rows, frames_per_clip: int, size: int, workers: int = 1, offset: float = 0.5,
                 desc: str = "decode clips") -> torch.Tensor:
    """uint8 [N, frames_per_clip, size, size, 3] for manifest rows (path, frames)."""
    jobs = [(r.path, r.frames, frames_per_clip, size, offset) for r in rows.itertuples()]
    if workers <= 1:
        clips = [_decode_one(j) for j in tqdm(jobs, desc=desc, unit="video")]
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=SPAWN) as pool:
            clips = list(tqdm(pool.map(_decode_one, jobs, chunksize=8), total=len(jobs), desc=desc, unit="video"))
    return torch.from_numpy(np.stack(clips))


def sample_frames(cache: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
    """Pick `frames` of the cached frames per clip: uniform segments with a random offset."""
    n, cached = cache.shape[:2]
    offsets = torch.rand(n, generator=generator)
    seg = cached / frames
    idx = (seg * (torch.arange(frames)[None, :] + offsets[:, None])).floor().long().clamp(max=cached - 1)
    return torch.gather(cache, 1, idx.view(n, frames, 1, 1, 1).expand(-1, -1, *cache.shape[2:]))


def augment(clips: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = False) -> torch.Tensor:
    """Weak augmentation, the same for every frame of a clip: a random shift, optional flip.

    Flip is off by default: on the generated set "moving left" and "moving right" are classes.
    """
    n, t, h, w, c = clips.shape
    x = clips.permute(0, 1, 4, 2, 3).reshape(n, t * c, h, w).float()
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty((n, t * c, h, w), dtype=x.dtype, device=x.device)
    for i in range(n):
        crop = x[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop.flip(-1) if (flip and flips[i]) else crop
    return out.view(n, t, c, h, w).permute(0, 1, 3, 4, 2).round().to(torch.uint8)
