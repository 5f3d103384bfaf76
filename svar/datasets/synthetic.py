"""The generated dataset: UCF101's layout and split format, with classes a CLIP model can read.

Each class is "a <colour> <shape> <motion>" (folder `RedSquareMovingLeft`, file
`v_RedSquareMovingLeft_g03_c02.avi`). Several classes share an appearance and differ only by
motion, so — as with real CLIP on UCF101 — a single frame tells the object, not the action.
Nuisance variation, drawn per video so that none of it tells the class: background brightness,
tint, gradient and texture, object colour jitter, size, position and speed. Groups (gXX) only
name the train/test partition: groups 1..test_groups are the test list, as in UCF101.
There are ten default classes and up to 101 (UCF101's count, for scale tests: EXTRA_CLASSES);
frames may be non-square (UCF101's are 320×240) and videos as long as UCF101's (~7 s).

The same generator writes a *pretraining pool*: videos of every colour × shape × motion,
disjoint from the benchmark's lists, with a caption for each frame describing only what one
frame shows (object, colour, position, background). The tiny CLIP teacher learns from it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_text
from ..config import default
from ..video import iter_videos
from .base import DATASETS, Dataset, DatasetShape

FPS = 25

COLOURS = {
    "red": (215, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 75, 225),
    "yellow": (230, 210, 40),
    "purple": (150, 55, 200),
    "orange": (240, 135, 25),
    "white": (240, 240, 240),
    "cyan": (40, 200, 215),
}
SHAPES = ("square", "circle", "triangle", "cross")
MOTIONS = (
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "rotating",
    "growing",
    "shrinking",
    "oscillating",
)

# The default benchmark's classes. Pairs share an appearance (red square, blue circle, green
# triangle) and differ by motion only; the rest are told apart by appearance.
DEFAULT_CLASSES = (
    ("red", "square", "moving left"),
    ("red", "square", "moving right"),
    ("blue", "circle", "growing"),
    ("blue", "circle", "shrinking"),
    ("green", "triangle", "rotating"),
    ("green", "triangle", "moving up"),
    ("yellow", "cross", "rotating"),
    ("purple", "circle", "moving down"),
    ("orange", "square", "oscillating"),
    ("white", "triangle", "moving left"),
)


# Classes beyond the default ten (up to 101, UCF101's count, for scale tests): the other 246 colour
# × shape × motion triples, ordered by the SHA-256 of "colour shape motion" — a fixed shuffle that
# depends on no library's random stream, so class k is the same triple everywhere, for good. The
# first N spread over every colour, shape and motion, and many share an appearance (colour, shape)
# while differing by motion only, as the default pairs do.
EXTRA_CLASSES = tuple(sorted(
    (triple for triple in itertools.product(COLOURS, SHAPES, MOTIONS) if triple not in DEFAULT_CLASSES),
    key=lambda triple: hashlib.sha256(" ".join(triple).encode()).hexdigest()))
ALL_CLASSES = DEFAULT_CLASSES + EXTRA_CLASSES
MAX_CLASSES = 101


def spec_classes(n: int) -> tuple:
    """The first n classes: the default ten, then EXTRA_CLASSES (dataset.synthetic.classes)."""
    if not 2 <= n <= MAX_CLASSES:
        raise ValueError(f"dataset.synthetic.classes: must be 2..{MAX_CLASSES}, got {n}")
    return ALL_CLASSES[:n]


def class_folder(colour: str, shape: str, motion: str) -> str:
    """`red square moving left` -> `RedSquareMovingLeft` (UCF101's CamelCase folder names)."""
    return "".join(word.capitalize() for word in f"{colour} {shape} {motion}".split())


@dataclass
class SyntheticSpec:
    """The generated dataset's settings; the defaults are the config's (`dataset.synthetic`,
    documented in svar/data/config.schema.yaml), where `classes` is a count of ALL_CLASSES.
    `width` / `height` 0: `size`."""

    size: int = default("dataset.synthetic.size")
    groups: int = default("dataset.synthetic.groups")
    clips_per_group: int = default("dataset.synthetic.clips_per_group")
    test_groups: int = default("dataset.synthetic.test_groups")
    min_frames: int = default("dataset.synthetic.min_frames")
    max_frames: int = default("dataset.synthetic.max_frames")
    pretrain_videos: int = default("dataset.synthetic.pretrain_videos")
    seed: int = default("dataset.synthetic.seed")
    classes: tuple = DEFAULT_CLASSES[:default("dataset.synthetic.classes")]
    width: int = default("dataset.synthetic.width")
    height: int = default("dataset.synthetic.height")

    def __post_init__(self):
        for key in ("width", "height"):
            if 0 < getattr(self, key) < 16:
                raise ValueError(f"dataset.synthetic.{key}: {getattr(self, key)} pixels; give 16 or more (0: size)")
        if self.min_frames > self.max_frames:
            raise ValueError(f"dataset.synthetic.min_frames ({self.min_frames}) is above max_frames "
                             f"({self.max_frames}); give min_frames <= max_frames")

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of every frame."""
        return (self.height or self.size, self.width or self.size)


# keys added after the first generated sets: hashed into the folder name only when set away from
# their defaults, so that every earlier spec keeps its folder (and its DVC-tracked videos)
LATER_KEYS = ("width", "height", "min_frames", "max_frames")


@DATASETS.register
class Synthetic(Dataset):
    """The generated dataset: written by `generate`, no archives."""

    name = "synthetic"
    generated = True

    @classmethod
    def folder(cls, dataset_config: dict) -> str:
        """data/synthetic-<digest of dataset.synthetic>: another spec is another dataset, so a
        config never reuses (or overwrites) another's videos."""
        section = {k: v for k, v in dataset_config["synthetic"].items()
                   if k not in LATER_KEYS or v != default(f"dataset.synthetic.{k}")}
        spec = json.dumps(section, sort_keys=True, separators=(",", ":"))
        return f"{cls.name}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"

    @classmethod
    def shape(cls, dataset_config: dict) -> DatasetShape:
        """The generated set's shape, from its settings (dataset.synthetic)."""
        s = dataset_config["synthetic"]
        width, height = s.get("width") or s["size"], s.get("height") or s["size"]
        lo, hi = s.get("min_frames", 24), s.get("max_frames", 40)
        per_class = s["groups"] * s["clips_per_group"]
        test = s["classes"] * s["test_groups"] * s["clips_per_group"]
        return DatasetShape(s["classes"] * per_class - test, test, (lo + hi) / 2, width, height,
                            "the generated set's settings (dataset.synthetic)")


# --------------------------------------------------------------------------- rendering


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Mask of `shape` of radius r in object coordinates (u right, v down)."""
    if shape == "square":
        return (np.abs(u) <= 0.8 * r) & (np.abs(v) <= 0.8 * r)
    if shape == "circle":
        return u * u + v * v <= r * r
    if shape == "triangle":  # pointing up
        return (v <= 0.5 * r) & (v >= -r + 1.7320508 * np.abs(u) * 1.0)
    if shape == "cross":
        arm = 0.3 * r
        return ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


def _background(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, str]:
    """A textured background and the words a caption uses for it."""
    light = rng.random() < 0.5
    base = rng.uniform(150, 200) if light else rng.uniform(20, 80)
    tint = rng.uniform(-25, 25, size=3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    yy, xx = yy / height, xx / width
    angle = rng.uniform(0, 2 * np.pi)
    gradient = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None] * rng.uniform(10, 40)
    texture = rng.normal(0, 6, size=(height, width, 1))
    img = base + tint[None, None, :] + gradient + texture
    return np.clip(img, 0, 255).astype(np.float32), ("light" if light else "dark")


def _trajectory(motion: str, n: int, height: int, width: int, rng: np.random.Generator):
    """Per-frame (x, y, radius, angle) for a motion, with random speed and start. Sizes and speeds
    are fractions of the short side; positions span the frame's own width and height."""
    side = min(height, width)
    t = np.arange(n, dtype=np.float64)
    r0 = rng.uniform(0.12, 0.17) * side
    angle0 = rng.uniform(0, 2 * np.pi) if motion != "rotating" else rng.uniform(0, np.pi / 2)
    speed = rng.uniform(0.6, 1.0) * side / 2.2 / max(n - 1, 1)  # total travel ~ 0.27..0.45 of the short side
    margin = 1.05 * r0
    x = np.full(n, rng.uniform(margin + 0.15 * width, width - margin - 0.15 * width))
    y = np.full(n, rng.uniform(margin + 0.15 * height, height - margin - 0.15 * height))
    r = np.full(n, r0)
    a = np.full(n, angle0 if motion in ("rotating",) else 0.0)
    travel = speed * (n - 1)
    if motion in ("moving left", "moving right", "moving up", "moving down"):
        lo, hi = margin, (width if motion in ("moving left", "moving right") else height) - margin
        start = rng.uniform(lo + travel, hi) if motion in ("moving left", "moving up") else rng.uniform(lo, hi - travel)
        sign = -1 if motion in ("moving left", "moving up") else 1
        line = start + sign * speed * t
        if motion in ("moving left", "moving right"):
            x = line
        else:
            y = line
    elif motion == "rotating":  # clockwise, 5..9 degrees a frame
        a = angle0 + np.deg2rad(rng.uniform(5, 9)) * t
    elif motion in ("growing", "shrinking"):
        small, big = rng.uniform(0.07, 0.1) * side, rng.uniform(0.2, 0.25) * side
        ramp = t / max(n - 1, 1)
        r = small + (big - small) * (ramp if motion == "growing" else 1 - ramp)
        x = np.full(n, width / 2 + rng.uniform(-0.1, 0.1) * width)
        y = np.full(n, height / 2 + rng.uniform(-0.1, 0.1) * height)
    elif motion == "oscillating":  # left-right, period 8..14 frames
        period = rng.uniform(8, 14)
        amp = rng.uniform(0.1, 0.16) * side
        x = width / 2 + rng.uniform(-0.05, 0.05) * width + amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    else:
        raise ValueError(f"unknown motion {motion!r}; choose from {MOTIONS}")
    return x, y, r, a


def _position_words(x: float, y: float, height: int, width: int) -> str:
    col = "left" if x < width / 3 else ("right" if x > 2 * width / 3 else "")
    row = "top" if y < height / 3 else ("bottom" if y > 2 * height / 3 else "")
    words = f"{row} {col}".strip()
    return words if words else "centre"


def render_video(colour: str, shape: str, motion: str, n_frames: int, size, rng: np.random.Generator):
    """Render one clip; return (frames uint8 [n, height, width, 3], one caption per frame).
    `size`: the side of a square frame, or (height, width)."""
    height, width = (size, size) if isinstance(size, int) else size
    bg, bg_words = _background(rng, height, width)
    rgb = np.array(COLOURS[colour], dtype=np.float32) + rng.uniform(-20, 20, size=3)
    rgb = np.clip(rgb, 0, 255)
    xs, ys, rs, angles = _trajectory(motion, n_frames, height, width, rng)
    # every shape lies within 1.2 radii of its centre: only that box is drawn on each frame (the
    # rest is the background's, bit for bit what masking the whole frame gives)
    background = bg.astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    frames[:] = background
    captions = []
    for i in range(n_frames):
        reach = int(math.ceil(1.2 * rs[i])) + 2
        top, bottom = max(int(ys[i]) - reach, 0), min(int(ys[i]) + reach + 1, height)
        left, right = max(int(xs[i]) - reach, 0), min(int(xs[i]) + reach + 1, width)
        if top < bottom and left < right:
            c, s = math.cos(angles[i]), math.sin(angles[i])
            du, dv = xx[top:bottom, left:right] - xs[i], yy[top:bottom, left:right] - ys[i]
            u, v = c * du + s * dv, -s * du + c * dv
            mask = _shape_mask(shape, u, v, rs[i])[..., None]
            frames[i, top:bottom, left:right] = np.where(mask, rgb, bg[top:bottom, left:right]).astype(np.uint8)
        captions.append(f"a {colour} {shape} at the {_position_words(xs[i], ys[i], height, width)} "
                        f"on a {bg_words} background")
    return frames, captions


def write_avi(path: Path, frames: np.ndarray, fps: int = FPS) -> None:
    """MPEG-4 part 2 in AVI, UCF101's format; bit-exact so the same frames give the same bytes."""
    import av

    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="avi",
                     container_options={"fflags": "+bitexact"}) as container:
            stream = container.add_stream("mpeg4", rate=fps)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.bit_rate = 1_500_000
            stream.thread_count = 1
            stream.codec_context.options = {"flags": "+bitexact"}
            for img in frames:
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


# --------------------------------------------------------------------------- the dataset


def _write_video(job) -> None:
    path, colour, shape, motion, seed, min_frames, max_frames, size = job
    rng = np.random.default_rng(seed)
    n = int(rng.integers(min_frames, max_frames + 1))
    frames, _ = render_video(colour, shape, motion, n, size, rng)
    write_avi(Path(path), frames)


def generate(out: str | Path, spec: SyntheticSpec, workers: int = 1) -> Path:
    """Write videos/, splits/ (classInd.txt, trainlist01.txt, testlist01.txt) and pretrain/.

    Files that already exist are kept, so an interrupted generation resumes where it stopped;
    every file is written atomically, and the random streams do not depend on what exists.
    `workers` > 1 renders and encodes videos in that many processes: each video has its own
    seeded stream, so the bytes are those of workers=1.
    """
    out = Path(out)
    videos, splits = out / "videos", out / "splits"
    folders = [class_folder(*c) for c in spec.classes]
    if len(set(folders)) != len(folders):
        raise ValueError("synthetic classes must be distinct (colour, shape, motion) triples")

    jobs = []  # (relative path, colour, shape, motion, group, rng seed)
    for ci, (colour, shape, motion) in enumerate(spec.classes):
        for g in range(1, spec.groups + 1):
            for c in range(1, spec.clips_per_group + 1):
                rel = f"{folders[ci]}/v_{folders[ci]}_g{g:02d}_c{c:02d}.avi"
                jobs.append((rel, colour, shape, motion, g, [spec.seed, 0, ci, g, c]))

    train, test = [], []
    todo = []
    for rel, colour, shape, motion, g, seed in jobs:
        (test if g <= spec.test_groups else train).append(rel)
        if not (videos / rel).exists():
            todo.append((str(videos / rel), colour, shape, motion, seed, spec.min_frames, spec.max_frames,
                         spec.frame_size))
    # each video from its own seeded stream: any number of workers writes the same bytes
    for _ in iter_videos(_write_video, todo, workers, desc="synthetic videos"):
        pass

    write_text(splits / "classInd.txt", "".join(f"{i} {f}\n" for i, f in enumerate(folders, 1)))
    label = {f: i for i, f in enumerate(folders, 1)}
    write_text(splits / "trainlist01.txt", "".join(f"{r} {label[folders_of(r)]}\n" for r in train))
    write_text(splits / "testlist01.txt", "".join(f"{r}\n" for r in test))
    _generate_pretrain_pool(out / "pretrain", spec, workers)
    return out


def folders_of(rel: str) -> str:
    return rel.split("/", 1)[0]


def _pool_video(job) -> list[str]:
    """Render one pool video, write it unless it exists, return its captions (one a frame)."""
    path, colour, shape, motion, seed, min_frames, max_frames, size = job
    rng = np.random.default_rng(seed)
    n = int(rng.integers(min_frames, max_frames + 1))
    frames, captions = render_video(colour, shape, motion, n, size, rng)
    if not Path(path).exists():
        write_avi(Path(path), frames)
    return captions


def _generate_pretrain_pool(out: Path, spec: SyntheticSpec, workers: int = 1) -> None:
    """Captioned videos of every colour × shape × motion, from a random stream of their own."""
    rng = np.random.default_rng([spec.seed, 2])
    combos = [(c, s, m) for c in COLOURS for s in SHAPES for m in MOTIONS]
    jobs = []
    for k in range(spec.pretrain_videos):
        colour, shape, motion = combos[int(rng.integers(len(combos)))]
        jobs.append((str(out / f"pool_{k:05d}.avi"), colour, shape, motion, [spec.seed, 3, k], spec.min_frames,
                     spec.max_frames, spec.frame_size))
    rows = []
    # an existing video is rendered again for its captions (the caption file is written last)
    for job, captions in zip(jobs, iter_videos(_pool_video, jobs, workers, desc="pretrain pool")):
        rows += [(Path(job[0]).name, i, cap) for i, cap in enumerate(captions)]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["video", "frame", "caption"])
    writer.writerows(rows)
    write_text(out / "captions.csv", buf.getvalue())
