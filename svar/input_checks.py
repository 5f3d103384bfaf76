"""What a config asks of its data, checked before the jobs and again in them.

An error: the published lists (`dataset.lists_dir`) hold no list for a fraction of the grid (rule
splits would find it only when it runs). Warnings, said at the config check (from the dataset's
manifest when `svar index` has run, else its settings: svar.datasets.dataset_shape) and in the
job's log (from what the job reads): settings beyond the data that run but waste or repeat —
more shards than videos, a batch larger than the videos it is drawn from, more cached frames
than a video has.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .wording import counted

log = logging.getLogger(__name__)


def _percent(fraction: float) -> str:
    return f"{round(float(fraction) * 100, 6):g}"


def expected_list(lists, fraction: float) -> str:
    """The file a fraction's published lists would be, named as the folder's other lists are
    (svar.literature's VideoSSL file or SVFormer folder)."""
    from .literature import _SVFORMER_FOLDER, _VIDEOSSL_LABELED

    if lists.list_format == "videossl":
        m = _VIDEOSSL_LABELED.fullmatch(lists.labeled_file.name)
        return f"{m['dataset']}_train_{_percent(fraction)}_percent_labeled_split_{m['split']}_rawframes.txt"
    m = _SVFORMER_FOLDER.fullmatch(lists.labeled_file.parent.name)
    return f"list_{m['dataset']}_{_percent(fraction)}/train.csv"


def lists_dir_problems(config: dict) -> list[str]:
    """A published convention's lists: lists_dir holds lists of its format, one for each
    budget of the grid (a fraction, or K shots for the K-shot formats) (a config check, before
    rule splits runs)."""
    from .literature import CONVENTIONS, SHOT_FORMATS, discover_lists, discover_shot_lists

    convention, lists_dir = config["dataset"]["split_convention"], config["dataset"]["lists_dir"]
    if convention not in CONVENTIONS or not lists_dir:
        return []
    if CONVENTIONS[convention] in SHOT_FORMATS:
        try:
            published = discover_shot_lists(lists_dir)
        except (OSError, ValueError) as exc:
            return [f"dataset.lists_dir: {exc}"]
        labeled = next(iter(published.values())).labeled_file
        return [f"dataset.lists_dir: no {convention} list for {k} shots of the grid: "
                f"{labeled.with_name(labeled.name.rsplit('_', 1)[0] + f'_{k}.txt')} does not exist (lists for "
                f"{sorted(published)} shots are there); add it, or take {k} out of `shots`"
                for k in config.get("shots", []) if k not in published]
    try:
        published = discover_lists(lists_dir)
    except (OSError, ValueError) as exc:
        return [f"dataset.lists_dir: {exc}"]
    formats = sorted({lists.list_format for lists in published.values()})
    if formats != [CONVENTIONS[convention]]:
        return [f"dataset.lists_dir: {lists_dir} holds lists of the {', '.join(formats)} format; the {convention} "
                f"convention's are {CONVENTIONS[convention]}"]
    any_lists = next(iter(published.values()))
    return [f"dataset.lists_dir: no {convention} list for fraction {float(f):g} of the grid: "
            f"{Path(lists_dir) / expected_list(any_lists, f)} does not exist (lists for {sorted(published)} are "
            "there); add it, or take the fraction out of `fractions`"
            for f in config["fractions"] if not any(abs(float(f) - k) <= 1e-9 for k in published)]


def budget_problems(config: dict) -> list[str]:
    """The grid's label budgets against its split convention: at least one budget; a K-shot
    convention (vifi) takes `shots` only, a fraction convention `fractions` only, and `random`
    (a fraction of the pool whatever the class) no shots."""
    from .literature import CONVENTIONS, SHOT_FORMATS

    convention = config["dataset"]["split_convention"]
    fractions, shots = config["fractions"], config.get("shots", [])
    if not fractions and not shots:
        return ["fractions, shots: both empty; give the label budgets to run (fractions: [0.1], shots: [4])"]
    if convention in CONVENTIONS and CONVENTIONS[convention] in SHOT_FORMATS and fractions:
        return [f"fractions: {fractions} with dataset.split_convention {convention}, whose lists are K-shot lists; "
                "set fractions: [] and give `shots`"]
    if shots and (convention == "random" or (convention in CONVENTIONS and CONVENTIONS[convention] not in SHOT_FORMATS)):
        return [f"shots: {shots} with dataset.split_convention {convention}, which labels a fraction of the pool; "
                "K shots (K videos a class) are drawn by balanced or imported by vifi"]
    return []


# --------------------------------------------------------------------------- beyond the data


def shard_warnings(key: str, shards: int, videos: int, what: str) -> list[str]:
    if shards <= videos:
        return []
    return [f"{key}: {shards} shards for {counted(videos, 'video')} {what}: {shards - videos} of the shard jobs "
            f"get no video; {videos} shards or fewer"]


def batch_warnings(batch_size: int, videos: int, what: str) -> list[str]:
    if batch_size <= videos:
        return []
    return [f"train.batch_size: {batch_size} clips a batch, but only {counted(videos, 'video')} {what}: every "
            "batch holds some videos more than once"]


def cache_frames_warnings(student: dict, longest: int, what: str) -> list[str]:
    cache_frames = student.get("cache_frames")
    if student.get("sampling") != "segments" or cache_frames is None or cache_frames <= longest:
        return []
    return [f"student.cache_frames: {cache_frames} frames cached a video, but {what} has {longest}: the cache repeats "
            f"frames, {cache_frames / longest:.1f}× what a video has; {longest} or fewer"]


def data_warnings(config: dict, manifest_path=None) -> list[str]:
    """Settings beyond the data, from the dataset's shape (its manifest when there is one, else
    its settings or published counts; none known for the user's own videos before indexing)."""
    from .datasets import dataset_shape

    try:
        shape = dataset_shape(config, manifest_path)
    except (ValueError, OSError):
        return []
    out = shard_warnings("teacher.shards", config["teacher"]["shards"], shape.videos, "to encode")
    if config["clip_cache"]["mode"] == "shared":
        for part, videos in (("train", shape.train_videos), ("test", shape.test_videos)):
            out += shard_warnings("clip_cache.shards", config["clip_cache"]["shards"], videos,
                                  f"in the cache's {part} part")
    out += batch_warnings(config["train"]["batch_size"], shape.train_videos, "outside the test list, the most a run "
                          "labels")
    if shape.frame_counts is not None:
        longest = max(int(counts.max()) for counts in shape.frame_counts if len(counts))
    elif config["dataset"]["name"] == "synthetic" and not config["dataset"]["root"]:
        longest = int(config["dataset"]["synthetic"]["max_frames"])
    else:
        longest = None
    if longest is not None:
        out += cache_frames_warnings(config["student"], longest, "the longest video")
    return [f"{line} (the dataset's shape from {shape.source})" for line in out]


def warn(lines) -> None:
    for line in lines:
        log.warning("%s", line)


def teacher_job_warnings(shards, manifest) -> None:
    """In a teacher shard job's log: more shards than videos."""
    if shards is not None:
        warn(shard_warnings("teacher.shards", shards, len(manifest), "to encode"))


def clip_cache_job_warnings(options: dict, part: str, shards: int, manifest) -> None:
    """In a clip-cache shard job's log: more shards than the part's videos, more cached frames
    than its longest video has."""
    from .clips.cache_parts import part_of, part_videos

    videos = part_videos(manifest, part, options["dataset"]["split"])
    warn(shard_warnings("clip_cache.shards", shards, len(videos), f"in the cache's {part} part"))
    if len(videos) and part_of(part)[0] == "student":
        warn(cache_frames_warnings(options["student"], int(videos["frames"].max()),
                                   f"the {part} part's longest video"))


def train_job_warnings(options: dict, split, manifest) -> None:
    """In a train job's log: a batch larger than the run's labeled videos, more cached frames
    than the longest video has."""
    if "train" in options and "batch_size" in options["train"]:
        warn(batch_warnings(options["train"]["batch_size"], int((split["role"] == "labeled").sum()),
                            "labeled in this run's split"))
    if "student" in options and len(manifest):
        warn(cache_frames_warnings(options["student"], int(manifest["frames"].max()), "the longest video"))
