"""The contract every student method keeps, and the method registry.

A student method says what its batches hold (`needs`), and turns the student and a batch into
(loss, logs) (`loss`). It may keep a state across steps (`start`, `after_step`, `state_dict`),
bring its own model (`build_model`) or optimiser settings (`train_settings`). The config keys of
its own section it declares in `reads`; the keys every training run reads (the student, its
clips, the trainer's settings) the trainer adds (svar.trainer.training_reads).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..clips.sampling import CLIP_KEYS, ClipSpec, clip_keys
from ..registry import Registry
from ..student_weights import build_student

# every method a config can name: the student methods and the teacher-feature heads
METHODS = Registry("method", "methods")

# What a batch may hold beyond the labeled clips and their labels (x_l, y_l) and the teacher's
# video features of them (t_l), by what a method needs (the trainer builds each from one table,
# svar.trainer.BATCH_FIELDS):
#   unlabeled              x_u, t_u, idx_u: unlabeled clips (weak view), their teacher features,
#                          their positions in the unlabeled pool (per-video threshold state)
#   strong_view            x_u_strong: a strongly augmented view of the same frames as x_u
#   frame_features         tf_l (tf_u): the teacher's per-frame features [B, k, D]
#   teacher_logits         zs_l (zs_u): the teacher's zero-shot logits, logit scale included
#   teacher_pseudo_labels  pl_u: the teacher's pseudo-label probabilities of the unlabeled clips
NEEDS = ("unlabeled", "strong_view", "frame_features", "teacher_logits", "teacher_pseudo_labels")


def get_method(name: str, options: dict | None = None):
    return METHODS[name](options or {})


def has_unlabeled(batch: dict) -> bool:
    """Whether the batch holds unlabeled clips: not when every training video is labeled."""
    return "x_u" in batch


def detached(**terms) -> dict:
    """Detached scalars: the trainer turns them into numbers only when it writes the curve, so a
    step never waits for the GPU to finish just to log."""
    return {k: v.detach().float() for k, v in terms.items()}


def labeled_ce(student, batch) -> tuple[torch.Tensor, dict]:
    """Cross-entropy on the labeled clips only, and its log: supervised training's loss, and what
    every method with an unlabeled term trains on when a batch has no unlabeled clips."""
    logits, _ = student(batch["x_l"])
    ce = F.cross_entropy(logits, batch["y_l"])
    return ce, detached(ce=ce)


class StudentMethod:
    """A method that trains a model on clips with the shared trainer (svar.trainer)."""

    name = ""
    trains_student = True
    # the batch fields it needs (NEEDS), whatever its options; `needs_of` may add by options
    needs: frozenset = frozenset()
    # it trains the video student (student.arch, initialised as student.pretrained, with the
    # train section's optimiser settings); clip_finetune trains the teacher's encoder instead
    trains_video_student = True
    needs_teacher_weights = False  # its job reads the teacher's weights (the workflow adds them as an input)
    # the config section whose keys shape the clips it trains and is tested on, and names its clip
    # cache parts (svar.clips.parts): the student's, or clip_finetune's own
    clip_section = "student"

    def __init__(self, options: dict):
        self.options = options
        self.needs = self.needs_of(options)

    @classmethod
    def needs_of(cls, config: dict) -> frozenset:
        """The batch fields training under `config` (its method sections) builds."""
        return cls.needs

    @classmethod
    def reads(cls, config: dict) -> tuple[str, ...]:
        """The config keys of its own (whole sections, or section.key) its training reads, beyond
        what every run reads (svar.trainer.training_reads)."""
        return ()

    @classmethod
    def clip_reads(cls, config: dict) -> tuple[str, ...]:
        """The config keys of the clips it trains on: the student's (svar.clips.sampling) and the
        training crop's."""
        return CLIP_KEYS + clip_keys(config)

    def clip_spec(self, options: dict, store: dict) -> ClipSpec:
        """The clips a run trains on (its options: what `training_reads` gives it)."""
        return ClipSpec.from_options(options["student"])

    @classmethod
    def evaluate_reads(cls) -> tuple[str, ...]:
        """The config keys scoring its model reads (rule evaluate)."""
        return ("evaluate",)

    def start(self, student, n_unlabeled: int = 0, num_classes: int = 0, device=None) -> None:
        """Before the first step: set up any state the method keeps across steps."""

    def after_step(self, student) -> None:
        """After each optimiser step."""

    def state_dict(self) -> dict:
        """The state it keeps across steps, for the run's resume checkpoint."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def train_settings(self, train: dict) -> dict:
        """The trainer's settings for this method: the config's `train` section."""
        return train

    def build_model(self, options: dict, store: dict, num_classes: int):
        """The model it trains: the student (student.arch, initialised as student.pretrained)."""
        return build_student(options["student"], num_classes, store["text_embeddings"].shape[1])

    def teacher_pseudo_labels(self, store: dict, labeled, unlabeled, t_l, t_u, num_classes: int) -> torch.Tensor:
        """pl_u (needs teacher_pseudo_labels): class probabilities of the unlabeled videos (split rows
        `unlabeled`, their teacher video features t_u)."""
        raise NotImplementedError(f"{self.name} needs no teacher pseudo-labels")

    def loss(self, student, batch, step: int = 0) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError
