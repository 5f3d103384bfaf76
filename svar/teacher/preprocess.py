"""open_clip's image preprocessing, batched on tensors, and the decoding dataset that feeds it.

uint8 frames -> shortest side to the model's input size (resampled as the model's own
preprocessing says, `interpolation`: open_clip's are bicubic, X-CLIP's bilinear; antialiased) ->
centre crop -> normalise with the model's own mean and std. On CUDA the resize runs on the device, batched
over the videos of a batch that share a frame size (the GPU does it in microseconds, and the
workers' cores stay free for decoding); on CPU the "device" is the very cores the encoder needs,
so it runs in the decoding workers, in parallel, per video, where the different frame sizes of a
dataset cost nothing.
"""

from __future__ import annotations

import torch

from ..image import DEFAULT_RESIZE_MODE, resize_center_crop
from ..video import read_frames
from .sampling import sample_indices, sampling_spec


def image_size(pre: dict) -> int:
    """The model's square input size, from open_clip's preprocess config."""
    return pre["size"][0] if isinstance(pre["size"], (tuple, list)) else pre["size"]


def interpolation(pre: dict) -> str:
    """The model's resize resampling, from its preprocess config (open_clip's key; bicubic, CLIP's
    own, where a config names none)."""
    return pre.get("interpolation", DEFAULT_RESIZE_MODE)


def normalize(x_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    x = x_uint8.float().div_(255)
    mean = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class FrameDataset(torch.utils.data.Dataset):
    """Sampled frames of each video: item i is (i, uint8 frames).

    With `size`, frames come resized (`mode`) and cropped ([T, 3, size, size], in the worker);
    with size None, as decoded ([T, H, W, 3]) for the device to resize.
    """

    def __init__(self, paths, n_frames, k, size=None, fps=None, sampling=None, mode: str = DEFAULT_RESIZE_MODE):
        self.paths, self.n_frames, self.size, self.mode = list(paths), list(n_frames), size, mode
        self.fps = list(fps) if fps is not None else [0.0] * len(self.paths)
        self.spec = sampling_spec(sampling, k)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        idx = sample_indices(int(self.n_frames[i]), float(self.fps[i]), self.spec)
        frames = torch.from_numpy(read_frames(self.paths[i], idx))
        if self.size is not None:
            frames = resize_center_crop(frames, self.size, self.mode)
        return i, frames


def collate_frames(items):
    """(positions int64 [B], frames): one stacked tensor when all shapes agree, else a list."""
    positions = torch.tensor([i for i, _ in items], dtype=torch.int64)
    frames = [f for _, f in items]
    if all(f.shape == frames[0].shape for f in frames):
        return positions, torch.stack(frames)
    return positions, frames


def to_model_input(frames, size: int, pre: dict, device: torch.device, resized: bool) -> torch.Tensor:
    """A batch of uint8 frames -> normalised float [B*T, 3, size, size] on the device.

    Not yet resized: videos sharing a frame size are resized together, on the device.
    """
    if resized:
        x = frames.to(device, non_blocking=True).flatten(0, 1)
        return normalize(x, pre["mean"], pre["std"])
    videos = list(frames) if isinstance(frames, (list, tuple)) else [frames[j] for j in range(frames.shape[0])]
    t = videos[0].shape[0]
    out = [None] * len(videos)
    groups: dict[tuple, list[int]] = {}
    for j, v in enumerate(videos):
        groups.setdefault(tuple(v.shape), []).append(j)
    for members in groups.values():
        if len(members) == len(videos) and not isinstance(frames, (list, tuple)):
            batch = frames
        else:
            batch = torch.stack([videos[j] for j in members])
        x = resize_center_crop(batch.to(device, non_blocking=True).flatten(0, 1), size, interpolation(pre))
        for n, j in enumerate(members):
            out[j] = x[n * t:(n + 1) * t]
    return normalize(torch.cat(out), pre["mean"], pre["std"])

