"""What the student sees of its clips: the training views (random crops, flips, RandAugment, the
strong view) and the test views (centre or spread crops).

A clip (uint8 [N, T, H, W, 3] at the cache size, from svar.clips.store) holds the frames its
clip-sampling mode chose (svar.clips.sampling). Cached frames are resized to cover `cache_size`
(H, W) and centre-cropped to it, e.g. 128×171 for 112-pixel crops. Training takes a random crop
of `size` (or a random resized crop) and a flip where the classes allow it, with
torchvision.transforms.v2 on each clip as one video (one draw for all its frames); evaluation
takes the centre crop, or `crops` crops spread along the long side, of `clips` clips spread over
the video (`eval_views`).

Every random draw comes from the trainer's CPU generator (transforms.v2 draws from torch's
global generator, seeded from it), so the same seed gives the same batches on any device. Each
random step is two functions: `draw_*` makes its draws from the frames' size alone, before any
pixel is read, and `cut_*` / `apply_*` applies them and draws nothing, so the trainer can make
every draw in order on its own thread and cut the next batch in the background
(svar.trainer.Trainer's prefetch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import enum_of


def _seeded(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2 ** 62, (1,), generator=generator))


@dataclass
class CropDraws:
    """The random draws of a batch's training crops (`draw_train_crops`), made before any pixel is
    read; `cut_train_crops` applies them and draws nothing."""

    n: int
    size: int
    flips: torch.Tensor | None        # bool [n]: which clips to flip, None when flipping is off
    rows: torch.Tensor | None = None  # crop random: [n, size] source rows (clamped: the replicated border)
    cols: torch.Tensor | None = None
    boxes: list | None = None         # crop random_resized: v2's parameters of each clip
    transform: object = None          # ... and the v2.RandomResizedCrop that applies them


def draw_train_crops(n: int, height: int, width: int, size: int, generator: torch.Generator, crop: str = "random",
                     padding: int = 0, scale=(0.25, 1.0), flip: bool = False) -> CropDraws:
    """The draws of `train_crops` for `n` clips of `height` × `width` frames (see there)."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    if crop not in enum_of("train.crop"):
        raise ValueError(f"train.crop: {crop!r} is not one of {enum_of('train.crop')}")
    seed = _seeded(generator)
    if not n:
        return CropDraws(0, size, None)
    # v2 draws from torch's default generator: seeded here, and put back as it was afterwards.
    # Only the frame's size is read (an empty video of that size stands for the clips), so the
    # draws can be made before the pixels are read, and apart from them (Trainer's prefetch)
    state = torch.get_rng_state()
    try:
        torch.default_generator.manual_seed(seed)
        if crop == "random":
            # boxes drawn in the padded frame; replicate padding is the source index clamped to
            # the frame, so the batch is cut by one gather
            padded = tv_tensors.Video(torch.empty((0, 3, height + 2 * padding, width + 2 * padding), dtype=torch.uint8))
            draw = v2.RandomCrop(size)
            boxes = [draw.make_params([padded]) for _ in range(n)]
            shift = torch.arange(size) - padding
            rows = (torch.tensor([b["top"] for b in boxes])[:, None] + shift).clamp(0, height - 1)
            cols = (torch.tensor([b["left"] for b in boxes])[:, None] + shift).clamp(0, width - 1)
            draws = CropDraws(n, size, None, rows=rows, cols=cols)
        else:
            transform = v2.RandomResizedCrop(size, scale=tuple(scale), antialias=True)
            frame = tv_tensors.Video(torch.empty((0, 3, height, width), dtype=torch.uint8))
            draws = CropDraws(n, size, None, boxes=[transform.make_params([frame]) for _ in range(n)],
                              transform=transform)
        flips = torch.rand(n) < 0.5
    finally:
        torch.set_rng_state(state)
    draws.flips = flips if flip else None
    return draws


def cut_train_crops(clips: torch.Tensor, draws: CropDraws) -> torch.Tensor:
    """The training view `draws` describes of uint8 clips [N, T, H, W, 3]; [N, T, size, size, 3]."""
    n, t = clips.shape[:2]
    if n != draws.n:
        raise ValueError(f"crops drawn for {draws.n} clips, given {n}")
    if not n:
        return clips.new_zeros((0, t, draws.size, draws.size, 3))
    if draws.rows is not None:
        out = clips[torch.arange(n)[:, None, None, None], torch.arange(t)[None, :, None, None],
                    draws.rows[:, None, :, None], draws.cols[:, None, None, :]]
    else:
        from torchvision import tv_tensors

        out = torch.stack([draws.transform.transform(tv_tensors.Video(clip.permute(0, 3, 1, 2)), box)
                           .as_subclass(torch.Tensor) for clip, box in zip(clips, draws.boxes)]).permute(0, 1, 3, 4, 2)
    if draws.flips is not None:
        out = torch.where(draws.flips.view(n, 1, 1, 1, 1), out.flip(3), out)
    return out


def train_crops(clips: torch.Tensor, size: int, generator: torch.Generator, crop: str = "random",
                padding: int = 0, scale=(0.25, 1.0), flip: bool = False) -> torch.Tensor:
    """The training view of each clip, one draw for all of its frames: a random `size` crop of
    the frame padded by `padding` replicated pixels (crop `random`), or a random resized crop of
    area `scale` (crop `random_resized`); then a horizontal flip with probability 0.5 when `flip`
    (off on the generated set: "moving left" and "moving right" are classes there).

    The crops are torchvision.transforms.v2's (RandomCrop / RandomResizedCrop draw the boxes, from
    torch's global generator seeded from `generator` inside a forked RNG state, so no other code's
    draws shift). A random crop is then cut for the whole batch by one gather rather than by v2
    clip by clip, with the replicated border as clamped source indices: v2 clip by clip cost the
    default benchmark's training loop a quarter of its speed (`svar bench train`: real-data /
    model-only ratio 0.74), and v2's own padding_mode="edge" on uint8 video took 217 ms a batch
    against 3.4 ms for padding by indexing (measured side by side here). The draws
    (`draw_train_crops`) and the cut (`cut_train_crops`) are apart, so that the trainer can make
    the draws in order and cut in the background.

    uint8 [N, T, H, W, 3] in, uint8 [N, T, size, size, 3] out.
    """
    n, _, h, w = clips.shape[:4]
    return cut_train_crops(clips, draw_train_crops(n, h, w, size, generator, crop, padding, scale, flip))


def _recording_randaugment(num_ops: int, magnitude: int):
    """v2.RandAugment that records the ops its forward draws instead of applying them: its draws
    (from torch's global generator) are v2's own, and `apply_randaugment` applies them later."""
    from torchvision.transforms import v2

    class Recording(v2.RandAugment):
        def _apply_image_or_video_transform(self, image, transform_id, magnitude, interpolation, fill):
            self.drawn.append((transform_id, magnitude, interpolation, fill))
            return image

    return Recording(num_ops=num_ops, magnitude=magnitude)


def draw_randaugment(n: int, height: int, width: int, generator: torch.Generator, num_ops: int,
                     magnitude: int) -> list | None:
    """The draws of `randaugment` for `n` clips of `height` × `width` frames: each clip's ops and
    magnitudes, v2.RandAugment's own (only the frame's size is read); None when `num_ops` is 0."""
    if num_ops == 0:
        return None
    from torchvision import tv_tensors

    seed = _seeded(generator)
    recorder = _recording_randaugment(num_ops, magnitude)
    frame = tv_tensors.Video(torch.empty((0, 3, height, width), dtype=torch.uint8))
    drawn = []
    state = torch.get_rng_state()
    try:
        torch.default_generator.manual_seed(seed)
        for _ in range(n):
            recorder.drawn = []
            recorder(frame)
            drawn.append(recorder.drawn)
    finally:
        torch.set_rng_state(state)
    return drawn


def apply_randaugment(clips: torch.Tensor, drawn: list | None) -> torch.Tensor:
    """The ops `draw_randaugment` drew applied to uint8 clips [N, T, H, W, 3], each clip's to all of
    its frames (v2's kernels: v2.RandAugment's own application of an op). Draws nothing."""
    if drawn is None or not len(clips):
        return clips
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    if len(drawn) != len(clips):
        raise ValueError(f"RandAugment drawn for {len(drawn)} clips, given {len(clips)}")
    apply = v2.RandAugment()._apply_image_or_video_transform  # what v2.RandAugment.forward applies an op with
    out = []
    for clip, ops in zip(clips, drawn):
        video = tv_tensors.Video(clip.permute(0, 3, 1, 2))
        for transform_id, magnitude, interpolation, fill in ops:
            video = apply(video, transform_id, magnitude, interpolation=interpolation, fill=fill)
        out.append(video.as_subclass(torch.Tensor))
    return torch.stack(out).permute(0, 1, 3, 4, 2)


def randaugment(clips: torch.Tensor, generator: torch.Generator, num_ops: int, magnitude: int) -> torch.Tensor:
    """torchvision.transforms.v2.RandAugment on each clip as one video: the ops and their signs
    are drawn once a clip and applied to all of its frames (v2 transforms a Video's frames with
    one draw), from torch's global generator seeded from `generator` inside a saved RNG state,
    as `train_crops` does (`draw_randaugment`, then `apply_randaugment`). `num_ops` 0 returns the
    clips and draws nothing.

    uint8 [N, T, H, W, 3] in and out (on the CPU: the ops are cheap next to the student).
    """
    n, _, h, w = clips.shape[:4]
    return apply_randaugment(clips, draw_randaugment(n, h, w, generator, num_ops, magnitude))


def crop_boxes(height: int, width: int, size: int, n_crops: int) -> list[tuple[int, int]]:
    """(top, left) of `n_crops` test crops of `size`: the centre crop for one; otherwise spread
    evenly along the long side from one end to the other, centred on the short side (the
    three-crop test of the 3D-CNN literature)."""
    top, left = (height - size) // 2, (width - size) // 2
    if n_crops == 1:
        return [(top, left)]
    spread = [round(i * (max(height, width) - size) / (n_crops - 1)) for i in range(n_crops)]
    return [(top, p) if width >= height else (p, left) for p in spread]


def eval_views(clips: torch.Tensor, size: int, n_crops: int) -> list[torch.Tensor]:
    """The `n_crops` test crops (crop_boxes) of uint8 clips [N, T, H, W, 3], each [N, T, size, size, 3]."""
    h, w = clips.shape[2:4]
    return [clips[:, :, top:top + size, left:left + size] for top, left in crop_boxes(h, w, size, n_crops)]


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a CPU tensor to `device` without making the host wait for the GPU's queue (pinned
    memory, non-blocking); a no-op on the CPU."""
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


# strong augmentation's ranges (RandAugment / FixMatch-like); the crop area and the cutout side
# are the config's (train.strong_area, train.strong_cutout), chosen on validation videos
STRONG = {
    "ratio": (3 / 4, 4 / 3),      # random resized crop: its aspect ratio
    "brightness": (0.6, 1.4),
    "contrast": (0.6, 1.4),
    "saturation": (0.6, 1.4),
    "grayscale_p": 0.2,
}


def _uniform(n: int, lo_hi, generator) -> torch.Tensor:
    lo, hi = lo_hi
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def draw_strong(n: int, height: int, width: int, generator: torch.Generator, flip: bool = False, area=(0.5, 1.0),
                cutout=(0.2, 0.4)) -> torch.Tensor:
    """The draws of `strong_augment` for `n` clips of `height` × `width` frames, as the parameters
    `apply_strong` reads: float [n, 22] on the CPU (affine, colour matrix, luma, offset, cutout)."""
    h, w = height, width
    # --- draws, in a fixed order
    area = _uniform(n, area, generator)
    log_ratio = _uniform(n, [math.log(r) for r in STRONG["ratio"]], generator)
    pos = torch.rand(n, 2, generator=generator) * 2 - 1
    flips = torch.rand(n, generator=generator) < 0.5
    bright = _uniform(n, STRONG["brightness"], generator)
    contrast = _uniform(n, STRONG["contrast"], generator)
    sat = _uniform(n, STRONG["saturation"], generator)
    gray = torch.rand(n, generator=generator) < STRONG["grayscale_p"]
    side = _uniform(n, cutout, generator)
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
    return torch.cat([theta, matrix.view(n, 9), luma.expand(n, 3), torch.stack([offset_scale, half, cy, cx], 1)], 1)


def apply_strong(clips: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The strong view `draw_strong`'s parameters describe of uint8 clips [N, T, H, W, 3], computed
    batched on the clips' device. Draws nothing."""
    n, t, h, w, c = clips.shape
    dev = clips.device
    params = to_device(params, dev)  # every parameter to the device in one copy
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


def strong_augment(clips: torch.Tensor, generator: torch.Generator, flip: bool = False, area=(0.5, 1.0),
                   cutout=(0.2, 0.4)) -> torch.Tensor:
    """Strong augmentation, the same for every frame of a clip: random resized crop (scale and
    aspect ratio, anywhere in the frame), optional flip, brightness, contrast and saturation
    jitter, random grayscale, and a cutout square filled with grey. `area`: the fraction of the
    frame the crop keeps; `cutout`: the square's side as a fraction of the frame's.

    uint8 [N, T, H, W, 3] in and out; the work runs batched on the clips' device, the random
    parameters are drawn on the CPU from `generator` (`draw_strong`, then `apply_strong`).
    """
    n, _, h, w, _ = clips.shape
    return apply_strong(clips, draw_strong(n, h, w, generator, flip, area, cutout))
