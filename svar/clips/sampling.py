"""Which frames of a video a student's clip holds: the clip-sampling modes (`student.sampling`),
one registry.

What a student sees of a video is a `ClipSpec` (the config's `student` keys that shape its
input); its mode, a registered `ClipSampling`, owns what differs from mode to mode:

- `segments`: `frames` frames, one from each of `frames` equal segments of the whole video;
  the cache keeps `cache_frames` uniformly spread frames and a training clip takes `frames` of
  them with a random offset (TSN-style; the generated set's default).
- `dense`: `frames` frames `stride` apart from a random start (the 3D-CNN recipe, 16×4 for the
  3D-ResNets); the cache keeps every `stride`-th frame of the whole video, so any start (on the
  stride) can be drawn; a video shorter than a clip is looped (mmaction2's `loop`).

Each mode names the one key it reads beyond `CLIP_KEYS` (`reads`), checks it (`problems`), and
gives the frames its cache keeps (`cached_indices`), where a training clip lies among them
(`train_positions`), the test clips (`test_indices`) and the view validation scores
(`val_indices`). The config schema's enum of student.sampling is this registry's names
(tests/test_clip_sampling.py). This module imports no torch (the training draw is given its
tensors), so naming the modes costs nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..registry import Registry
from ..video import uniform_indices

CLIP_SAMPLINGS = Registry("clip sampling mode", "student.sampling")

# what every run's clips read, whatever its modes (clip_keys adds the sampling mode's and the crop's)
CLIP_KEYS = ("student.sampling", "student.frames", "student.size", "student.cache_size")
# the key each training crop (train.crop; svar.clips.views cuts them) reads
CROP_KEYS = {"random": "train.crop_padding", "random_resized": "train.crop_scale"}


def crop_keys(config: dict) -> tuple[str, ...]:
    """The key the training crop reads: the padding of a random crop or the area of a random
    resized one."""
    crop = config["train"]["crop"]
    if crop not in CROP_KEYS:
        raise ValueError(f"train.crop: {crop!r} is not one of {list(CROP_KEYS)}")
    return (CROP_KEYS[crop],)


def clip_keys(config: dict) -> tuple[str, ...]:
    """The keys of a student's clips that depend on its modes: the sampling mode's (the stride of
    dense clips, the cached frames of segments), then the crop's (`crop_keys`)."""
    return CLIP_SAMPLINGS[config["student"]["sampling"]].reads + crop_keys(config)


class ClipSampling:
    """A clip-sampling mode: its `name` (student.sampling's value), the student keys it reads
    beyond CLIP_KEYS (`reads`), and the frames of an n-frame video each of its views holds."""

    name: str
    reads: tuple[str, ...]

    def spec_fields(self, student: dict) -> dict:
        """ClipSpec's `stride` and `cache_frames` from the keys this mode reads (the other one moot)."""
        raise NotImplementedError

    def problems(self, student: dict) -> list[str]:
        """What makes this mode's clips impossible, each naming its key."""
        return []

    def cached_indices(self, spec: "ClipSpec", n_frames: int) -> np.ndarray:
        """The frames of an n-frame video the cache keeps for training clips."""
        raise NotImplementedError

    def train_positions(self, spec: "ClipSpec", lengths, u, steps):
        """long [N, frames]: where in its cached frames (`lengths` of them, long [N]) each video's
        training clip lies, given its one uniform draw `u` (float [N]) and `steps` =
        torch.arange(frames)."""
        raise NotImplementedError

    def test_indices(self, spec: "ClipSpec", n_frames: int, clip: int, n_clips: int) -> np.ndarray:
        """The frames of test clip `clip` of `n_clips`, spread evenly over the video."""
        raise NotImplementedError

    def val_indices(self, spec: "ClipSpec", n_frames: int) -> np.ndarray:
        """The frames of the view validation scores."""
        raise NotImplementedError


def _missing(student: dict, key: str) -> str:
    return f"student.{key}: missing, and student.sampling {student['sampling']} reads it; give it"


def _need(student: dict, key: str) -> int:
    if key not in student:
        raise ValueError(_missing(student, key))
    return int(student[key])


class Segments(ClipSampling):
    """One frame from each of `frames` equal segments; the cache keeps `cache_frames` uniformly
    spread frames and a training clip takes `frames` of them at a random offset shared by its
    segments."""

    name = "segments"
    reads = ("student.cache_frames",)

    def spec_fields(self, student):
        return {"stride": 1, "cache_frames": _need(student, "cache_frames")}

    def problems(self, student):
        if "cache_frames" not in student:
            return [_missing(student, "cache_frames")]
        if student["frames"] > student["cache_frames"]:
            return [f"student.frames: {student['frames']} frames a clip, but only student.cache_frames = "
                    f"{student['cache_frames']} are decoded a video; raise cache_frames or lower frames"]
        return []

    def cached_indices(self, spec, n_frames):
        return uniform_indices(n_frames, spec.cache_frames)

    def train_positions(self, spec, lengths, u, steps):
        seg = lengths[:, None].double() / spec.frames
        within = (seg * (steps[None, :] + u[:, None].double())).floor().long()
        return within.minimum(lengths[:, None] - 1)

    def test_indices(self, spec, n_frames, clip, n_clips):
        return uniform_indices(n_frames, spec.frames, (clip + 0.5) / n_clips)

    def val_indices(self, spec, n_frames):
        """The centre test clip."""
        return self.test_indices(spec, n_frames, 0, 1)


class Dense(ClipSampling):
    """`frames` frames `stride` apart; the cache keeps every `stride`-th frame, a training clip is
    `frames` consecutive cached frames from a random start, looped when the video is short."""

    name = "dense"
    reads = ("student.stride",)

    def spec_fields(self, student):
        return {"stride": _need(student, "stride"), "cache_frames": int(student["frames"])}

    def cached_indices(self, spec, n_frames):
        return np.arange(0, n_frames, spec.stride, dtype=np.int64)

    def train_positions(self, spec, lengths, u, steps):
        first = (u.double() * (lengths - spec.frames + 1).clamp(min=1)).floor().long()
        return (first[:, None] + steps[None, :]) % lengths[:, None]

    def test_indices(self, spec, n_frames, clip, n_clips):
        span = (spec.frames - 1) * spec.stride + 1
        start = int(max(n_frames - span, 0) * (clip + 0.5) / n_clips)
        return (start + spec.stride * np.arange(spec.frames, dtype=np.int64)) % n_frames  # looped when short

    def val_indices(self, spec, n_frames):
        """The centre one of the clips training draws (`train_positions` at offset 0.5: `frames`
        consecutive cached frames, looped over them when the video is short), so it lies on the
        cached stride grid and the cache keeps no frame for it alone (the centre test clip starts
        anywhere: for UCF101 its frames were 10.0 of the train part's 38.2 GB, `svar plan
        --configfile workflow/config/ucf101.yaml`)."""
        cached = self.cached_indices(spec, n_frames)
        first = int(0.5 * max(len(cached) - spec.frames + 1, 1))
        return cached[(first + np.arange(spec.frames)) % len(cached)]


for _mode in (Segments(), Dense()):  # the schema's order
    CLIP_SAMPLINGS.register(_mode)


def clip_problems(student: dict) -> list[str]:
    """What makes a student's clips impossible, beyond the schema's types, each naming its key: an
    unknown mode, the mode's own (more frames a clip than segments sampling caches), a cache
    smaller than the crop. `student` may hold only the keys its mode reads, and no `size` (a
    clip cache's options: it serves any crop within its frames)."""
    if student["sampling"] not in CLIP_SAMPLINGS:
        return [f"student.sampling: {student['sampling']!r} is not one of {list(CLIP_SAMPLINGS.names())}"]
    out = CLIP_SAMPLINGS[student["sampling"]].problems(student)
    if "size" in student and min(student["cache_size"]) < student["size"]:
        out.append(f"student.cache_size: {list(student['cache_size'])} is smaller than the crop, student.size = "
                   f"{student['size']}; cache at least the crop size")
    return out


@dataclass(frozen=True)
class ClipSpec:
    """What the student takes of a video (the config's `student` keys that shape its input);
    `size` is None for a clip cache's options, which hold no crop."""

    sampling: str
    frames: int
    stride: int
    cache_frames: int
    cache_size: tuple[int, int]
    size: int | None

    @classmethod
    def from_options(cls, student: dict) -> "ClipSpec":
        """The spec of a `student` section: a run's (only the keys its mode reads: clip_keys) or a
        clip cache part's (svar.clips.cache_parts.cache_reads: no size)."""
        for problem in clip_problems(student):
            raise ValueError(problem)
        mode = CLIP_SAMPLINGS[student["sampling"]]
        return cls(mode.name, int(student["frames"]), cache_size=tuple(int(v) for v in student["cache_size"]),
                   size=int(student["size"]) if "size" in student else None, **mode.spec_fields(student))

    @property
    def mode(self) -> ClipSampling:
        return CLIP_SAMPLINGS[self.sampling]

    def cached_indices(self, n_frames: int) -> np.ndarray:
        """The frames of an n-frame video the cache keeps for training clips."""
        return self.mode.cached_indices(self, n_frames)

    def test_indices(self, n_frames: int, clip: int, n_clips: int) -> np.ndarray:
        """The frames of test clip `clip` of `n_clips`, spread evenly over the video."""
        return self.mode.test_indices(self, n_frames, clip, n_clips)

    def val_indices(self, n_frames: int) -> np.ndarray:
        """The frames of the view validation scores."""
        return self.mode.val_indices(self, n_frames)

    def train_positions(self, lengths, u, steps):
        """Where each training clip lies among its video's cached frames (ClipSampling.train_positions)."""
        return self.mode.train_positions(self, lengths, u, steps)

    def training_frames(self, n_frames: int, trained: bool = True, validated: bool = True) -> np.ndarray:
        """The sorted frames a training run reads of a video: those its training clips are drawn
        from (`trained`) and those of its validation view (`validated`)."""
        wanted = ([self.cached_indices(n_frames)] if trained else []) + ([self.val_indices(n_frames)] if validated else [])
        return np.unique(np.concatenate(wanted))

    def test_frames(self, n_frames: int, n_clips: int) -> np.ndarray:
        """The sorted frames of a video's `n_clips` test clips."""
        return np.unique(np.concatenate([self.test_indices(n_frames, c, n_clips) for c in range(n_clips)]))

    def describe(self) -> dict:
        return asdict(self)
