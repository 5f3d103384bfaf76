"""Which frames of a video the teacher encodes: the frame-sampling modes, one registry.

A sampling spec is a dict, complete and recorded in the feature store's meta:

    {"mode": "uniform", "frames": k}             k frames, centres of k equal segments (default)
    {"mode": "fps", "fps": r, "frames": k}       k frames r per second apart, centred in the video
                                                  (clamped to its ends when it is shorter)
    {"mode": "clips", "clips": n, "frames": k}   n equal segments, k uniform frames in each; stored
                                                  as n*k frames per video, clip after clip

Each mode is a registered `SamplingMode`, which names the keys it takes and gives a video's indices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import default
from ..registry import Registry
from ..video import uniform_indices

SAMPLING_MODES = Registry("sampling mode", "teacher.sampling.mode")


@dataclass(frozen=True)
class SamplingMode:
    """A frame-sampling mode: its name, the keys it takes beyond mode and frames (each with its
    type; a value must be > 0, and a missing one is the config's default) and the function
    giving a video's frame indices, indices(n_frames, video_fps, spec)."""

    name: str
    takes: dict
    indices: Callable[[int, float, dict], np.ndarray]

    def keys(self) -> tuple[str, ...]:
        return ("mode", "frames", *self.takes)

    def check(self, spec: dict) -> None:
        for key, kind in self.takes.items():
            spec[key] = kind(spec.get(key, default(f"teacher.sampling.{key}")))
            if spec[key] <= 0:
                raise ValueError(f"teacher.sampling: mode {self.name} needs {key} > 0, got {spec[key]}")


def _uniform(n_frames: int, video_fps: float, spec: dict) -> np.ndarray:
    return uniform_indices(int(n_frames), spec["frames"])


def _fps(n_frames: int, video_fps: float, spec: dict) -> np.ndarray:
    if n_frames <= 0:
        raise ValueError("a video with no frames has no indices")
    k = spec["frames"]
    step = (float(video_fps) / spec["fps"]) if video_fps and video_fps > 0 else 1.0
    centre = (n_frames - 1) / 2
    idx = np.round(centre + (np.arange(k) - (k - 1) / 2) * step).astype(np.int64)
    return np.clip(idx, 0, n_frames - 1)


def _clips(n_frames: int, video_fps: float, spec: dict) -> np.ndarray:
    n, k = spec["clips"], spec["frames"]
    seg = n_frames / n
    return np.concatenate([
        np.clip(np.floor(c * seg + uniform_indices(max(1, int(math.floor(seg))), k)).astype(np.int64),
                0, n_frames - 1) for c in range(n)])


for _mode in (SamplingMode("uniform", {}, _uniform), SamplingMode("fps", {"fps": float}, _fps),
              SamplingMode("clips", {"clips": int}, _clips)):
    SAMPLING_MODES.register(_mode)


def sampling_spec(sampling: dict | None = None, frames_per_video: int | None = None) -> dict:
    """The complete spec of `sampling` (a partial spec; see the module doc), checked; frames
    default to `frames_per_video`, then to the config's default."""
    if frames_per_video is None:
        frames_per_video = default("teacher.sampling.frames")
    spec = {"mode": default("teacher.sampling.mode"), "frames": int(frames_per_video)}
    spec.update(sampling or {})
    if spec["mode"] not in SAMPLING_MODES:
        raise ValueError(f"teacher.sampling.mode: {spec['mode']!r} is not one of {SAMPLING_MODES.names()}")
    mode = SAMPLING_MODES[spec["mode"]]
    spec["frames"] = int(spec["frames"])
    if spec["frames"] < 1:
        raise ValueError("teacher.sampling.frames must be at least 1")
    mode.check(spec)
    extra = set(spec) - set(mode.keys())
    if extra:
        raise ValueError(f"teacher.sampling: keys {sorted(extra)} do not apply to mode {mode.name}")
    return spec


def sampling_from_config(cfg: dict) -> dict:
    """A config's `teacher.sampling` (every key present) as a spec: only the keys its mode
    takes, so that fps and clips can stay in the config for the other modes."""
    mode = cfg.get("mode", default("teacher.sampling.mode"))
    if mode not in SAMPLING_MODES:
        raise ValueError(f"teacher.sampling.mode: {mode!r} is not one of {SAMPLING_MODES.names()}")
    return sampling_spec({k: cfg[k] for k in SAMPLING_MODES[mode].keys() if k in cfg}, cfg.get("frames"))


def frames_per_store_row(spec: dict) -> int:
    return spec["frames"] * spec.get("clips", 1)


def sample_indices(n_frames: int, video_fps: float, spec: dict) -> np.ndarray:
    """Frame indices of one video under a sampling spec."""
    return SAMPLING_MODES[spec["mode"]].indices(n_frames, video_fps, spec)
