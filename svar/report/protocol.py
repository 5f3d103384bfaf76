"""A run's protocol in the words of the published-results table, and what differs between a
published number and the runs it is drawn beside.

svar/data/published_results.csv describes each published number by its backbone, pretraining,
clip (frames × size), test views (clips × crops), list source and labels. This module says the
same of one of our runs from what it recorded (its metrics.json: `provenance`, `split`), in the
same vocabulary, so that a run set up as a paper describes differs from it in nothing:

  backbone     student.arch → BACKBONES; clip_finetune (arch `clip:<model>`) and the teacher-only
               heads → the teacher's CLIP model, e.g. 'ViT-B/16 (CLIP)'
  pretraining  the student's init (svar.student_weights) → PRETRAINING; the teacher-only heads
               and clip_finetune start from the teacher's weights: 'CLIP'
  clip         the student's clips: frames × size, e.g. '16x112'
  views        the test views averaged: clips × crops, e.g. '10x3'
  lists        which labeled lists: the same published files, or a draw with the run's seed
  labels       the labeled fraction ('10%') or K labeled videos a class ('4 shots')

A published value the source does not give is UNSTATED, and differs from whatever a run did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from ..methods.teacher_heads import ClipZeroshot
from ..wording import counted

UNSTATED = "unstated"
# student.arch (svar.students) → the backbone as papers name it
BACKBONES = {
    "r3d_18": "3D-ResNet-18",
    "r2plus1d_18": "R(2+1)D-18",
    "mc3_18": "MC3-18",
    "s3d": "S3D",
    "mvit_v2_s": "MViT-v2-S",
    "swin3d_t": "Swin3D-T",
    "tiny3d": "Tiny3D (svar's own)",
    "vit_b16_divided": "ViT-B/16 (TimeSformer)",
}
SCRATCH = "none (trained from scratch)"
CLIP_WEIGHTS = "CLIP"
RANDOM_WEIGHTS = "none (random teacher weights)"
# how a student's init (svar.student_weights: Student.init) begins → the pretraining as papers name it
PRETRAINING = {
    "scratch": SCRATCH,
    "imagenet": "ImageNet",
    "kinetics400": "Kinetics-400",
    "the teacher's weights": CLIP_WEIGHTS,  # clip_finetune (svar.teacher.video_classifier)
}
# the pretraining values a published row may start with: the runs' vocabulary, or unstated
PRETRAINING_WORDS = (*dict.fromkeys(PRETRAINING.values()), "none", UNSTATED)
CLIP_STUDENT = "clip:"  # a clip_finetune model's arch: clip:<the teacher's open_clip model>
ZERO_SHOT_METHODS = (ClipZeroshot.name,)  # no labeled video: what a zero-shot published number sits beside


def fraction_label(fraction: float, shots: int | None = None) -> str:
    """'10%'; with K shots, '4 shots (2.1%)': K a class, and the labeled fraction they amount to."""
    return f"{100 * fraction:g}%" if shots is None else f"{counted(shots, 'shot')} ({100 * fraction:.2g}%)"


def labels_text(fraction, shots) -> str:
    """'10%', '0% (zero-shot)' or, for K labeled videos a class, '4 shots'."""
    if shots is not None and pd.notna(shots):
        return counted(int(shots), "shot")
    return "0% (zero-shot)" if fraction == 0 else fraction_label(fraction)


def clip_model_label(model: str) -> str:
    """An open_clip model name as papers write it: ViT-B-16 → 'ViT-B/16 (CLIP)', ViT-L-14-336 →
    'ViT-L/14@336px (CLIP)'; any other name keeps its spelling."""
    vit = re.fullmatch(r"ViT-([A-Za-z]+)-(\d+)(?:-(\d+))?(?:-[a-z]+)?", model)
    if not vit:
        return f"{model} (CLIP)"
    size, patch, resolution = vit.groups()
    return f"ViT-{size}/{patch}" + (f"@{resolution}px" if resolution else "") + " (CLIP)"


@dataclass(frozen=True)
class RunProtocol:
    """One run's protocol in the published table's vocabulary (see the module's docstring)."""

    method: str
    fraction: float | None
    shots: int | None
    convention: str
    backbone: str
    pretraining: str
    clip: str
    views: str
    list_source: str

    @property
    def labels(self) -> str:
        return labels_text(self.fraction, self.shots)


def run_shots(run: dict) -> int | None:
    """K labeled videos a class of a K-shot run (its metrics.json `shots`), None for a fraction run."""
    shots = run.get("shots")
    return None if shots is None or pd.isna(shots) else int(shots)


def _pretraining(run: dict) -> str:
    provenance = run["provenance"]
    init = provenance.get("student_init")
    if init is None or str(init).startswith("the teacher's weights"):  # the teacher's own encoder
        return RANDOM_WEIGHTS if run.get("teacher_random_weights") else CLIP_WEIGHTS
    return next((label for start, label in PRETRAINING.items() if str(init).startswith(start)), str(init))


def _backbone(provenance: dict) -> str:
    student = provenance.get("student") or ""
    if student.startswith(CLIP_STUDENT):
        return clip_model_label(student[len(CLIP_STUDENT):])
    if student in BACKBONES:
        return BACKBONES[student]
    if provenance.get("student_init") is None:  # a teacher-only head: the teacher's features
        return clip_model_label(provenance["teacher_model"])
    return student


def _views(views: str) -> str:
    """svar.evaluate's '10 clips × 3 crops' → '10x3'; any other text (a teacher-only head's) as it is."""
    found = re.fullmatch(r"(\d+) clips? × (\d+) crops?", views or "")
    return f"{found[1]}x{found[2]}" if found else (views or "unrecorded")


def run_protocol(run: dict) -> RunProtocol:
    """A run's protocol from its metrics.json (as svar.evaluate writes it)."""
    provenance = run["provenance"]
    clips = provenance.get("clips")
    views = _views(provenance.get("views"))
    split = run.get("split") or {}
    shots = run_shots(run)
    convention = split.get("convention", provenance.get("split_convention", "unrecorded"))
    source = split.get("list_source", "unrecorded")
    if source.startswith("drawn with seed"):  # each seed its own draw: one protocol for the method
        source = f"{convention} draw with each run's seed"
    return RunProtocol(
        method=run["method"], fraction=None if shots is not None else float(run["fraction"]), shots=shots,
        convention=convention, backbone=_backbone(provenance), pretraining=_pretraining(run),
        clip=f"{clips['frames']}x{clips['size']}" if clips else views, views=views, list_source=source)


def same_labels(row, protocol: RunProtocol) -> bool:
    """Whether a run used the labels a published row did: the same K, the same fraction, or none
    at all (a zero-shot row and the zero-shot teacher)."""
    shots = row.get("shots")
    if shots is not None and pd.notna(shots):
        return protocol.shots == int(shots)
    if row["label_fraction"] == 0:
        return protocol.method in ZERO_SHOT_METHODS
    return protocol.shots is None and protocol.method not in ZERO_SHOT_METHODS and \
        round(protocol.fraction, 6) == round(float(row["label_fraction"]), 6)


def same_lists(row, protocol: RunProtocol, dataset: str) -> bool:
    """Whether a run trained on the published row's very lists: it imported a published
    convention's files, and they name the same videos as the row's (svar.splits.comparable_conventions).
    A draw by the same rule is comparable, but its lists are not the row's."""
    from ..splits import PUBLISHED_RULES, comparable_conventions

    if protocol.convention not in PUBLISHED_RULES:
        return False
    return row["split_convention"] in comparable_conventions(dataset, protocol.convention, protocol.fraction,
                                                             protocol.shots)


# what is compared by equality, in order: (name printed, the row's value, the run's value)
COMPARED = (
    ("backbone", lambda row: row["backbone"], lambda p: p.backbone),
    ("pretraining", lambda row: row["pretraining"], lambda p: p.pretraining),
    ("clip", lambda row: row["clip"], lambda p: p.clip),
    ("views", lambda row: row["views"], lambda p: p.views),
)


def differences(row, protocols: list[RunProtocol], dataset: str) -> str:
    """Every difference in protocol between a published row and the runs it is drawn beside:
    'backbone: 3D-ResNet-50 vs 3D-ResNet-18; views: 10x3 vs 1x1', "none" when there is none.

    The runs it is drawn beside are those at its labels (same_labels); when none is, every run of
    the table, and the labels are a difference too. The lists are compared unless the row is
    zero-shot (it used none). A run value that only some of them have names its methods."""
    if not protocols:
        return "our runs' protocol unrecorded"
    beside = [p for p in protocols if same_labels(row, p)]
    compared = list(COMPARED)
    if row["label_fraction"] != 0:  # a zero-shot number used no lists (its labels say so)
        compared.append(("lists", lambda r: r["list_source"], lambda p: p.list_source))
    if not beside:  # drawn for context beside runs at other labels
        beside = protocols
        compared.append(("labels", lambda r: labels_text(r["label_fraction"], r.get("shots")), lambda p: p.labels))
    parts = []
    for name, theirs, ours in compared:
        if name == "lists":
            differing = [p for p in beside if not same_lists(row, p, dataset)]
        else:
            differing = [p for p in beside if ours(p) != theirs(row)]
        if differing:
            parts.append(f"{name}: {theirs(row)} vs {_values_text(differing, ours, len(beside))}")
    return "; ".join(parts) or "none"


def _values_text(protocols: list[RunProtocol], value, n_beside: int) -> str:
    """The differing run values, each naming its methods unless every run beside the row has it."""
    methods_of: dict[str, set] = {}
    for protocol in protocols:
        methods_of.setdefault(value(protocol), set()).add(protocol.method)
    if len(methods_of) == 1 and len(protocols) == n_beside:
        return next(iter(methods_of))
    return ", ".join(f"{text} ({', '.join(sorted(methods))})" for text, methods in sorted(methods_of.items()))


def table_protocols(runs: list[dict]) -> list[RunProtocol]:
    """The distinct protocols of a table's runs (seeds of one method share theirs)."""
    return list(dict.fromkeys(run_protocol(run) for run in runs))


def shots_column(frame: pd.DataFrame) -> pd.Series:
    """A table's `shots` (K labeled videos a class), all missing when it has no such column."""
    return frame["shots"] if "shots" in frame.columns else pd.Series(float("nan"), index=frame.index)
