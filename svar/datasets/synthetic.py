"""The generated dataset: UCF101's layout and split format, with classes a CLIP model can read.

Each class is "a <colour> <shape> <motion>" (folder `RedSquareMovingLeft`, file
`v_RedSquareMovingLeft_g03_c02.avi`). Several classes share an appearance and differ only by
motion, so — as with real CLIP on UCF101 — a single frame tells the object, not the action.
Nuisance variation, drawn per video so that none of it tells the class: background brightness,
tint, gradient and texture, object colour jitter, size, position and speed. Groups (gXX) only
name the train/test partition: groups 1..test_groups are the test list, as in UCF101.

The same generator writes a *pretraining pool*: videos of every colour × shape × motion,
disjoint from the benchmark's lists, with a caption for each frame describing only what one
frame shows (object, colour, position, background). The tiny CLIP teacher learns from it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_path, write_text
from ..config import default
from .base import DATASETS, Dataset

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


def class_folder(colour: str, shape: str, motion: str) -> str:
    """`red square moving left` -> `RedSquareMovingLeft` (UCF101's CamelCase folder names)."""
    return "".join(word.capitalize() for word in f"{colour} {shape} {motion}".split())


@dataclass
class SyntheticSpec:
    """The generated dataset's settings; the defaults are the config's (`dataset.synthetic`,
    documented in svar/data/config.schema.yaml), where `classes` is a count of DEFAULT_CLASSES."""

    size: int = default("dataset.synthetic.size")
    groups: int = default("dataset.synthetic.groups")
    clips_per_group: int = default("dataset.synthetic.clips_per_group")
    test_groups: int = default("dataset.synthetic.test_groups")
    min_frames: int = 24
    max_frames: int = 40
    pretrain_videos: int = default("dataset.synthetic.pretrain_videos")
    seed: int = default("dataset.synthetic.seed")
    classes: tuple = DEFAULT_CLASSES[:default("dataset.synthetic.classes")]


@DATASETS.register
class Synthetic(Dataset):
    """The generated dataset: written by `generate`, no archives."""

    name = "synthetic"
    generated = True

    @classmethod
    def folder(cls, dataset_config: dict) -> str:
        """data/synthetic-<digest of dataset.synthetic>: another spec is another dataset, so a
        config never reuses (or overwrites) another's videos."""
        spec = json.dumps(dataset_config["synthetic"], sort_keys=True, separators=(",", ":"))
        return f"{cls.name}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


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


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A textured background and the words a caption uses for it."""
    light = rng.random() < 0.5
    base = rng.uniform(150, 200) if light else rng.uniform(20, 80)
    tint = rng.uniform(-25, 25, size=3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    gradient = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None] * rng.uniform(10, 40)
    texture = rng.normal(0, 6, size=(size, size, 1))
    img = base + tint[None, None, :] + gradient + texture
    return np.clip(img, 0, 255).astype(np.float32), ("light" if light else "dark")


def _trajectory(motion: str, n: int, size: int, rng: np.random.Generator):
    """Per-frame (x, y, radius, angle) for a motion, with random speed and start."""
    t = np.arange(n, dtype=np.float64)
    r0 = rng.uniform(0.12, 0.17) * size
    angle0 = rng.uniform(0, 2 * np.pi) if motion != "rotating" else rng.uniform(0, np.pi / 2)
    speed = rng.uniform(0.6, 1.0) * size / 2.2 / max(n - 1, 1)  # total travel ~ 0.27..0.45 size
    margin = 1.05 * r0
    x = np.full(n, rng.uniform(margin + 0.15 * size, size - margin - 0.15 * size))
    y = np.full(n, rng.uniform(margin + 0.15 * size, size - margin - 0.15 * size))
    r = np.full(n, r0)
    a = np.full(n, angle0 if motion in ("rotating",) else 0.0)
    travel = speed * (n - 1)
    lo, hi = margin, size - margin
    if motion in ("moving left", "moving right", "moving up", "moving down"):
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
        small, big = rng.uniform(0.07, 0.1) * size, rng.uniform(0.2, 0.25) * size
        ramp = t / max(n - 1, 1)
        r = small + (big - small) * (ramp if motion == "growing" else 1 - ramp)
        x = np.full(n, size / 2 + rng.uniform(-0.1, 0.1) * size)
        y = np.full(n, size / 2 + rng.uniform(-0.1, 0.1) * size)
    elif motion == "oscillating":  # left-right, period 8..14 frames
        period = rng.uniform(8, 14)
        amp = rng.uniform(0.1, 0.16) * size
        x = size / 2 + rng.uniform(-0.05, 0.05) * size + amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    else:
        raise ValueError(f"unknown motion {motion!r}; choose from {MOTIONS}")
    return x, y, r, a


def _position_words(x: float, y: float, size: int) -> str:
    col = "left" if x < size / 3 else ("right" if x > 2 * size / 3 else "")
    row = "top" if y < size / 3 else ("bottom" if y > 2 * size / 3 else "")
    words = f"{row} {col}".strip()
    return words if words else "centre"


def render_video(colour: str, shape: str, motion: str, n_frames: int, size: int,
                 rng: np.random.Generator):
    """Render one clip; return (frames uint8 [n, size, size, 3], one caption per frame)."""
    bg, bg_words = _background(rng, size)
    rgb = np.array(COLOURS[colour], dtype=np.float32) + rng.uniform(-20, 20, size=3)
    rgb = np.clip(rgb, 0, 255)
    xs, ys, rs, angles = _trajectory(motion, n_frames, size, rng)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    frames = np.empty((n_frames, size, size, 3), dtype=np.uint8)
    captions = []
    for i in range(n_frames):
        c, s = math.cos(angles[i]), math.sin(angles[i])
        du, dv = xx - xs[i], yy - ys[i]
        u, v = c * du + s * dv, -s * du + c * dv
        mask = _shape_mask(shape, u, v, rs[i])[..., None]
        frames[i] = np.where(mask, rgb, bg).astype(np.uint8)
        captions.append(f"a {colour} {shape} at the {_position_words(xs[i], ys[i], size)} "
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


def generate(out: str | Path, spec: SyntheticSpec) -> Path:
    """Write videos/, splits/ (classInd.txt, trainlist01.txt, testlist01.txt) and pretrain/.

    Files that already exist are kept, so an interrupted generation resumes where it stopped;
    every file is written atomically, and the random streams do not depend on what exists.
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
    for rel, colour, shape, motion, g, seed in tqdm(jobs, desc="synthetic videos", unit="video"):
        (test if g <= spec.test_groups else train).append(rel)
        path = videos / rel
        if path.exists():
            continue
        rng = np.random.default_rng(seed)
        n = int(rng.integers(spec.min_frames, spec.max_frames + 1))
        frames, _ = render_video(colour, shape, motion, n, spec.size, rng)
        write_avi(path, frames)

    write_text(splits / "classInd.txt", "".join(f"{i} {f}\n" for i, f in enumerate(folders, 1)))
    label = {f: i for i, f in enumerate(folders, 1)}
    write_text(splits / "trainlist01.txt", "".join(f"{r} {label[folders_of(r)]}\n" for r in train))
    write_text(splits / "testlist01.txt", "".join(f"{r}\n" for r in test))
    _generate_pretrain_pool(out / "pretrain", spec)
    return out


def folders_of(rel: str) -> str:
    return rel.split("/", 1)[0]


def _generate_pretrain_pool(out: Path, spec: SyntheticSpec) -> None:
    """Captioned videos of every colour × shape × motion, from a random stream of their own."""
    rng = np.random.default_rng([spec.seed, 2])
    combos = [(c, s, m) for c in COLOURS for s in SHAPES for m in MOTIONS]
    rows = []
    for k in tqdm(range(spec.pretrain_videos), desc="pretrain pool", unit="video"):
        colour, shape, motion = combos[int(rng.integers(len(combos)))]
        vrng = np.random.default_rng([spec.seed, 3, k])
        n = int(vrng.integers(spec.min_frames, spec.max_frames + 1))
        frames, captions = render_video(colour, shape, motion, n, spec.size, vrng)
        rel = f"pool_{k:05d}.avi"
        if not (out / rel).exists():
            write_avi(out / rel, frames)
        rows += [(rel, i, cap) for i, cap in enumerate(captions)]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["video", "frame", "caption"])
    writer.writerows(rows)
    write_text(out / "captions.csv", buf.getvalue())
