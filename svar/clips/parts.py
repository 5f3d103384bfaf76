"""The clip cache's part names (no torch: the CLI's choices): which videos a part holds, and
whose clips.

A part holds the videos `train` (outside the test list of dataset.split) or `test` (the test
list), of one clip section's clips: the student's (parts train, test: the `student` keys) or
clip_finetune's own frames over the whole video (parts clip_finetune_train, clip_finetune_test:
svar.clips.finetune_clips), so the student methods' cache is untouched by clip_finetune's.
"""

from __future__ import annotations

from .finetune_clips import SECTION as FINETUNE_SECTION

VIDEOS = ("train", "test")
CLIP_SECTIONS = ("student", FINETUNE_SECTION)


def cache_part(section: str, videos: str) -> str:
    """The name of the part holding the `videos` (train, test) clips of a clip section."""
    return videos if section == "student" else f"{section}_{videos}"


PARTS = tuple(cache_part(section, videos) for section in CLIP_SECTIONS for videos in VIDEOS)


def part_of(part: str) -> tuple[str, str]:
    """(clip section, videos) of a part name."""
    for section in CLIP_SECTIONS:
        for videos in VIDEOS:
            if cache_part(section, videos) == part:
                return section, videos
    raise ValueError(f"clip cache part {part!r} is not one of {PARTS}")
