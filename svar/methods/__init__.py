"""The method zoo: each algorithm a small registered class that defines its loss.

The shared trainer (svar.trainer) builds batches and steps the optimiser; a student method
(`base.StudentMethod`) receives the student, a batch and the step and returns (loss, logs). A
batch holds the labeled clips and labels (x_l, y_l, uint8 [B, T, H, W, 3] weakly augmented), the
teacher's video features of them (t_l, [B, D] L2-normalised), and what the method `needs`
(base.NEEDS: the unlabeled clips and their features, a strong view, the teacher's frame features,
zero-shot logits or pseudo-labels), so supervised training never pays for the unlabeled pool. With
no unlabeled videos (fraction 1) a batch has no unlabeled entries and every unlabeled term is
left out: at 100% of labels `teacher_pl`, `pseudo_label` and `fixmatch` train exactly as
`supervised`, and `distill_pl` as `distill`.

Each method's options live in its own config section, named as the method (`fixmatch.threshold`,
`teacher_pl.source`); distillation's are `distill`'s (read by `distill` and `distill_pl`). A
method declares the keys of its own it reads (`reads`, given the config); the trainer adds what
every run reads (svar.trainer.training_reads) and gets those and no others: a change to a key
reruns exactly the runs of the methods that read it.

A method may keep a state across steps (mean_teacher's EMA teacher, FlexMatch's per-video
selections): `start` before the first step, `after_step` after each, `state_dict` in the resume
checkpoint. A method whose loss uses pseudo-labels returns them in its logs as `pseudo_labels`,
(target class, mask), detached: the trainer scores them against the unlabeled videos' true
labels for the diagnostics, which the loss never sees.

Modules: `base` (the contract, METHODS), `terms` (shared terms: masked CE, thresholds,
ramps, pseudo-label sources), one module per family (`supervised`, `distillation`,
`pseudo_labels`, `soft_labels`, `mean_teacher`, `clip_finetune`), and `teacher_heads`
(classifiers on the teacher's stored features: clip_zeroshot, clip_linear_probe,
temporal_probe; their own registry, TEACHER_HEADS, with `fit` and `logits`). The families are
imported in the order their methods are listed (METHODS' order is the config's and the tables').
"""

from .base import METHODS, NEEDS, StudentMethod, get_method, has_unlabeled
from .terms import (PSEUDO_LABEL_SOURCES, TEACHER_PSEUDO_LABELS, THRESHOLD_MODES, FixedThreshold,
                    FlexMatchThresholds, masked_ce, sigmoid_ramp, unsup_ramp)
from . import supervised, distillation, pseudo_labels, soft_labels, mean_teacher, clip_finetune  # noqa: E401,F401
from .distillation import DISTILL_LOSSES, distill_loss, frame_distill_loss, frame_level_problems
from .teacher_heads import TEACHER_HEADS, TemporalHead, head_logits

__all__ = ["METHODS", "NEEDS", "StudentMethod", "get_method", "has_unlabeled", "PSEUDO_LABEL_SOURCES",
           "TEACHER_PSEUDO_LABELS", "THRESHOLD_MODES", "FixedThreshold", "FlexMatchThresholds", "masked_ce",
           "sigmoid_ramp", "unsup_ramp", "DISTILL_LOSSES", "distill_loss", "frame_distill_loss",
           "frame_level_problems", "TEACHER_HEADS", "TemporalHead", "head_logits"]
