"""The clips `clip_finetune` trains and is tested on: ViFi-CLIP's frames over the whole video at
the teacher's resolution, not the student's clips.

ViFi-CLIP (Rasheed et al. 2023) samples `frames` segments over the whole video, one frame each
(mmaction2's SampleFrames with clip_len 1 and num_clips = frames: a random frame of each segment
in training, the segment centres in test), at the CLIP encoder's input size (224). Here that is
the `segments` clip-sampling mode (svar.clips.sampling) set from the `clip_finetune` section:
`frames` segments, `cache_frames` of the video's frames cached for training (uniformly spread:
a training clip takes one of each segment's cached frames, at an offset its segments share),
`cache_size` pixels cached a frame; the crop is the encoder's input size, read from the model
(svar.teacher.video_classifier), so the same section serves any teacher. These clips have their
own clip-cache parts (svar.clips.cache_parts: clip_finetune_train, clip_finetune_test), so the
student methods' cache is untouched.
"""

from __future__ import annotations

from .sampling import ClipSpec

SECTION = "clip_finetune"
# the keys of the section that decide which pixels its clips hold (its cache parts' options)
CACHE_KEYS = tuple(f"{SECTION}.{key}" for key in ("frames", "cache_frames", "cache_size"))


def finetune_problems(section: dict, size: int | None = None) -> list[str]:
    """What makes clip_finetune's clips impossible, each naming its key."""
    out = []
    if section["frames"] > section["cache_frames"]:
        out.append(f"{SECTION}.frames: {section['frames']} frames a clip, but only {SECTION}.cache_frames = "
                   f"{section['cache_frames']} are decoded a video; raise cache_frames or lower frames")
    if size is not None and min(section["cache_size"]) < size:
        out.append(f"{SECTION}.cache_size: {list(section['cache_size'])} is smaller than the teacher's input size "
                   f"{size}; cache at least {size} pixels a side")
    return out


def finetune_spec(section: dict, size: int | None = None) -> ClipSpec:
    """The clips of a `clip_finetune` section; `size` (the encoder's input size) is the crop, None
    for a clip cache part's options, which hold no crop."""
    for problem in finetune_problems(section, size):
        raise ValueError(problem)
    student_like = {"sampling": "segments", "frames": section["frames"], "cache_frames": section["cache_frames"],
                    "cache_size": section["cache_size"]}
    return ClipSpec.from_options(student_like if size is None else {**student_like, "size": size})
