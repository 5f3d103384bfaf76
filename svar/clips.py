"""Decoded clips for the student: frames decoded once, resized, held as uint8.

The training videos are decoded once per run into memory, or, with `student.cache_dir`, once per
(videos, size, frames) into a .npy file that later runs open as a memory map. Training takes T
of the cached frames per clip with a random temporal offset (`take_clips`) and augments whole
batches on the device with vectorised tensor ops (`augment`, `strong_augment`); every random
draw comes from the trainer's CPU generator, so the same seed gives the same batches on any
device. Evaluation decodes the centred uniform frames (`decode_clips`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .atomic import atomic_path
from .image import resize_center_crop
from .video import decoder_versions, map_videos, read_frames, uniform_indices

log = logging.getLogger(__name__)

# bump when decoding, resizing or the cache layout changes: old cache files are then ignored
CACHE_VERSION = 1


def _decode_one(args) -> np.ndarray:
    path, n_frames, k, size, offset = args
    frames = read_frames(path, uniform_indices(int(n_frames), k, offset))
    return resize_center_crop(torch.from_numpy(frames), size).permute(0, 2, 3, 1).numpy()


def _decode_all(rows, frames_per_clip: int, size: int, workers: int, offset: float, desc: str) -> np.ndarray:
    jobs = [(r.path, r.frames, frames_per_clip, size, offset) for r in rows.itertuples()]
    clips = map_videos(_decode_one, jobs, workers, desc)
    if not clips:
        return np.zeros((0, frames_per_clip, size, size, 3), dtype=np.uint8)
    return np.stack(clips)


def decode_clips(rows, frames_per_clip: int, size: int, workers: int = 1, offset: float = 0.5,
                 desc: str = "decode clips") -> torch.Tensor:
    """uint8 [N, frames_per_clip, size, size, 3] for manifest rows (path, frames)."""
    return torch.from_numpy(_decode_all(rows, frames_per_clip, size, workers, offset, desc))


def cache_key(rows, frames_per_clip: int, size: int, offset: float = 0.5) -> str:
    """A hash of everything that changes the cached pixels: the videos (id, path, frame count,
    file size and modification time), frames per clip, size, temporal offset, the decoders'
    versions and this module's CACHE_VERSION."""
    videos = []
    for r in rows.itertuples():
        try:
            st = os.stat(r.path)
            stamp = [st.st_size, st.st_mtime_ns]
        except OSError:
            stamp = None
        videos.append([r.video_id, str(r.path), int(r.frames), stamp])
    spec = {"version": CACHE_VERSION, "frames": frames_per_clip, "size": size, "offset": offset,
            "decoders": decoder_versions(), "videos": videos}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def load_clips(rows, frames_per_clip: int, size: int, workers: int = 1, cache_dir: str | os.PathLike = "",
               desc: str = "decode clips") -> np.ndarray:
    """uint8 [N, frames_per_clip, size, size, 3] for manifest rows, decoded at the centred offset.

    cache_dir "" keeps them in memory only. Otherwise they are read from, or decoded once into,
    `<cache_dir>/clips_<frames>x<size>_<key>.npy` (written atomically) and opened as a read-only
    memory map, so repeated runs skip decoding and share the pages.
    """
    if not cache_dir:
        return _decode_all(rows, frames_per_clip, size, workers, 0.5, desc)
    key = cache_key(rows, frames_per_clip, size)
    path = Path(cache_dir) / f"clips_{frames_per_clip}x{size}_{key[:20]}.npy"
    expected = (len(rows), frames_per_clip, size, size, 3)
    if path.exists():
        clips = _open_cache(path, expected)
        if clips is not None:
            log.info("decoded-clip cache: %s", path)
            return clips
    clips = _decode_all(rows, frames_per_clip, size, workers, 0.5, f"{desc} (to {path.name})")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, clips)
    log.info("decoded-clip cache written: %s (%d videos)", path, len(clips))
    return _open_cache(path, expected)


def _open_cache(path: Path, expected: tuple) -> np.ndarray | None:
    """The cache file as a read-only memory map; None (with a warning naming it) when it is
    corrupt or not the shape its name promises: the cache is then decoded again."""
    try:
        clips = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:
        log.warning("%s: the decoded-clip cache is corrupt or truncated (%s); decoding it again", path, exc)
        return None
    if clips.shape != expected or clips.dtype != np.uint8:
        log.warning("%s: shape %s %s, expected %s uint8; decoding it again", path, clips.shape, clips.dtype, expected)
        return None
    return clips


def frame_offsets(n: int, cached: int, frames: int, generator: torch.Generator) -> torch.Tensor:
    """[n, frames] indices into the cached frames: uniform segments with a random offset."""
    offsets = torch.rand(n, generator=generator)
    seg = cached / frames
    return (seg * (torch.arange(frames)[None, :] + offsets[:, None])).floor().long().clamp(max=cached - 1)


def take_clips(cache, rows: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
    """uint8 [len(rows), frames, H, W, 3]: clips `rows` of a cache (numpy array, memory map or
    tensor [N, cached, H, W, 3]), `frames` of their cached frames each (uniform segments with a random offset),
    reading only those frames."""
    idx = frame_offsets(len(rows), cache.shape[1], frames, generator)
    if isinstance(cache, torch.Tensor):
        return cache[rows[:, None], idx]
    return torch.from_numpy(np.ascontiguousarray(cache[rows.numpy()[:, None], idx.numpy()]))


def _pad_rows(rows: torch.Tensor, unit: int, pad: int) -> torch.Tensor:
    """[R, L] -> [R, L + 2 * pad * unit]: the first and last `unit` elements repeated `pad` times."""
    n_rows, length = rows.shape
    out = rows.new_empty(n_rows, length + 2 * pad * unit)
    out[:, pad * unit:pad * unit + length] = rows
    out[:, :pad * unit].view(n_rows, pad, unit).copy_(rows[:, None, :unit])
    out[:, pad * unit + length:].view(n_rows, pad, unit).copy_(rows[:, None, -unit:])
    return out


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a CPU tensor to `device` without making the host wait for the GPU's queue (pinned
    memory, non-blocking); a no-op on the CPU."""
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def augment(clips: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = False) -> torch.Tensor:
    """Weak augmentation, the same for every frame of a clip: a random shift, optional flip.

    A shift of up to `pad` pixels with replicated borders (a crop of the replicate-padded clip).
    Flip is off by default: on the generated set "moving left" and "moving right" are classes.
    uint8 in, uint8 out, batched on the clips' device: whole image rows are gathered for the
    vertical shift, then each padded row is cut at the clip's horizontal offset.
    """
    n, t, h, w, c = clips.shape
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    # output row y of clip i, frame f is input row clamp(y + dy_i - pad)
    src = (torch.arange(h)[None, :] + dy[:, None] - pad).clamp(0, h - 1)
    src = (torch.arange(n * t).view(n, t, 1) * h + src[:, None, :]).view(-1)
    index = to_device(torch.cat([src, dx.repeat_interleave(t * h), flips.long()]), clips.device)  # one copy
    src, dx_rows, flips = index[:n * t * h], index[n * t * h:2 * n * t * h], index[2 * n * t * h:].bool()
    rows = clips.reshape(n * t * h, w * c).index_select(0, src)
    # output pixel x is padded pixel x + dx_i: a window of the padded row, stepping by a pixel
    windows = _pad_rows(rows, c, pad).unfold(1, w * c, c)  # [n*t*h, 2*pad+1, w*c] (a view)
    out = windows[torch.arange(n * t * h, device=clips.device), dx_rows].view(n, t, h, w, c)
    if flip:
        out = torch.where(flips.view(n, 1, 1, 1, 1), out.flip(3), out)
    return out  # channels-last already: the layout the student's convolutions take (Student._input)


# strong augmentation's ranges (RandAugment / FixMatch-like, milder in crop and cutout: on 32-pixel
# clips of small objects a bigger crop or square often removes the object; fixmatch on the generated
# set at fraction 0.2 did better with these than with area 0.35 and cutout 0.5)
STRONG = {
    "area": (0.5, 1.0),           # random resized crop: fraction of the frame kept
    "ratio": (3 / 4, 4 / 3),      # and its aspect ratio
    "brightness": (0.6, 1.4),
    "contrast": (0.6, 1.4),
    "saturation": (0.6, 1.4),
    "grayscale_p": 0.2,
    "cutout": (0.2, 0.4),         # side of the erased square, as a fraction of the frame side
}


def _uniform(n: int, lo_hi, generator) -> torch.Tensor:
    lo, hi = lo_hi
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def strong_augment(clips: torch.Tensor, generator: torch.Generator, flip: bool = False) -> torch.Tensor:
    """Strong augmentation, the same for every frame of a clip: random resized crop (scale and
    aspect ratio, anywhere in the frame), optional flip, brightness, contrast and saturation
    jitter, random grayscale, and a cutout square filled with grey.

    uint8 [N, T, H, W, 3] in and out; the work runs batched on the clips' device, the random
    parameters are drawn on the CPU from `generator`.
    """
    n, t, h, w, c = clips.shape
    dev = clips.device
    # --- draws, in a fixed order
    area = _uniform(n, STRONG["area"], generator)
    log_ratio = _uniform(n, [math.log(r) for r in STRONG["ratio"]], generator)
    pos = torch.rand(n, 2, generator=generator) * 2 - 1
    flips = torch.rand(n, generator=generator) < 0.5
    bright = _uniform(n, STRONG["brightness"], generator)
    contrast = _uniform(n, STRONG["contrast"], generator)
    sat = _uniform(n, STRONG["saturation"], generator)
    gray = torch.rand(n, generator=generator) < STRONG["grayscale_p"]
    side = _uniform(n, STRONG["cutout"], generator)
    centre = torch.rand(n, 2, generator=generator)

    # --- random resized crop (+ flip) as one affine resampling per clip
    ratio = log_ratio.exp()
    sx = (area * ratio).sqrt().clamp(max=1.0)  # crop width / frame width
    sy = (area / ratio).sqrt().clamp(max=1.0)
    tx, ty = pos[:, 0] * (1 - sx), pos[:, 1] * (1 - sy)
    if flip:
        sx = torch.where(flips, -sx, sx)
    zero = torch.zeros(n)
    theta = torch.stack([sx, zero, tx, zero, sy, ty], 1)

    # --- colour, per clip: brightness, contrast, saturation and grayscale are all linear in the
    # pixel, so they compose into one 3x3 matrix and an offset per clip (the torchvision order)
    luma = torch.tensor([0.299, 0.587, 0.114])
    eye, to_gray = torch.eye(3), torch.ones(3, 1) * luma[None, :]
    sat_m = sat.view(n, 1, 1) * eye + (1 - sat).view(n, 1, 1) * to_gray
    matrix = (bright * contrast).view(n, 1, 1) * sat_m
    matrix = torch.where(gray.view(n, 1, 1), to_gray @ matrix, matrix)
    offset_scale = (1 - contrast) * bright  # times the clip's mean luma: a grey level added to each channel

    # --- cutout: one grey square at the same place in every frame
    half = side * min(h, w) / 2
    cy, cx = centre[:, 0] * h, centre[:, 1] * w

    # every parameter to the device in one copy
    params = to_device(torch.cat([theta, matrix.view(n, 9), luma.expand(n, 3),
                                  torch.stack([offset_scale, half, cy, cx], 1)], 1), dev)
    theta, matrix, luma = params[:, :6].view(n, 2, 3), params[:, 6:15].view(n, 1, 3, 3), params[0, 15:18]
    offset_scale, half, cy, cx = params[:, 18], params[:, 19], params[:, 20], params[:, 21]

    x = clips.permute(0, 1, 4, 2, 3).reshape(n, t * c, h, w).float()
    grid = F.affine_grid(theta, [n, t * c, h, w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False).view(n, t, c, h, w)
    mean = (luma.view(1, 1, 3, 1, 1) * x).sum(2).mean(dim=(1, 2, 3))  # the clip's mean luma
    x = torch.matmul(matrix, x.view(n, t, c, h * w)) + (offset_scale * mean).view(n, 1, 1, 1)
    x = x.view(n, t, c, h, w)
    ys = torch.arange(h, device=dev).float() + 0.5
    xs = torch.arange(w, device=dev).float() + 0.5
    inside_y = (ys[None, :] - cy[:, None]).abs() < half[:, None]
    inside_x = (xs[None, :] - cx[:, None]).abs() < half[:, None]
    box = (inside_y[:, :, None] & inside_x[:, None, :]).view(n, 1, 1, h, w)
    x = x.masked_fill(box, 127.5)

    return x.clamp_(0, 255).round_().to(torch.uint8).permute(0, 1, 3, 4, 2)  # channel-planar memory
