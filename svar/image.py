"""Frame geometry on tensors, shared by the teacher's preprocessing and the student's clips."""

from __future__ import annotations

import torch
import torch.nn.functional as F


# the resamplings a model's preprocessing may name (open_clip's `interpolation`, X-CLIP's PIL `resample`)
RESIZE_MODES = ("bicubic", "bilinear")
# CLIP's own, the student's clips' and every open_clip model's: the mode where none is named
DEFAULT_RESIZE_MODE = "bicubic"


def resize_center_crop(frames: torch.Tensor, size: int, mode: str = DEFAULT_RESIZE_MODE) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> uint8 [T, 3, size, size]: shortest side to size, centre crop."""
    return resize_cover(frames, (size, size), mode)


def resize_cover(frames: torch.Tensor, box: tuple[int, int], mode: str = DEFAULT_RESIZE_MODE) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> uint8 [T, 3, box_h, box_w]: resized (aspect kept, `mode`, one of
    RESIZE_MODES, antialiased as PIL's resize is) to the smallest size that covers the box, then
    centre-cropped to it; a 320×240 video to (128, 171) is the 3D-CNN recipe's "resize to 128×171".

    Runs on whatever device `frames` is on; frames already the box's size are only permuted.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    x = frames.permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    bh, bw = box
    if h == bh and w == bw:
        return x.contiguous()
    x = x.float()
    scale = max(bh / h, bw / w)
    nh, nw = max(bh, round(h * scale)), max(bw, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode=mode, antialias=True, align_corners=False)
    top, left = (nh - bh) // 2, (nw - bw) // 2
    x = x[..., top:top + bh, left:left + bw]
    return x.round().clamp(0, 255).to(torch.uint8)
