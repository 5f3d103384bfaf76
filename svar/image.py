"""Frame geometry on tensors, shared by the teacher's preprocessing and the student's clips."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> uint8 [T, 3, size, size]: shortest side to size, centre crop.

    Runs on whatever device `frames` is on; frames already size × size are only permuted.
    """
    x = frames.permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    if h == size and w == size:
        return x.contiguous()
    x = x.float()
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[..., top:top + size, left:left + size]
    return x.round().clamp(0, 255).to(torch.uint8)
