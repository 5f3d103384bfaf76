"""Few-shot fine-tuning of the teacher's own image encoder on the labeled clips."""

from __future__ import annotations

from .base import METHODS, StudentMethod, labeled_ce


@METHODS.register
class ClipFinetune(StudentMethod):
    """Few-shot fine-tuning of the teacher's image encoder on the labeled videos only, ViFi-CLIP's
    recipe reduced to its vision side (Rasheed et al. 2023, which fine-tunes both encoders): each
    frame of a clip through the CLIP image encoder, the frame features averaged over time and
    L2-normalised, a linear classifier initialised from the class-name prompt embeddings times
    the logit scale (so step 0 is the zero-shot classifier, svar.teacher.video_classifier), all of it
    trained with cross-entropy at a small learning rate (`clip_finetune.lr`, weight decay
    `clip_finetune.weight_decay`); the trainer's other settings are `train`'s. It sees the
    student's clips (student.frames at student.size, resized to the encoder's input). No
    unlabeled video is used."""

    name = "clip_finetune"
    trains_video_student = False  # not the student's architecture, initialisation or optimiser settings
    needs_teacher_weights = True

    @classmethod
    def reads(cls, config):
        return ("clip_finetune", "teacher.cache_dir", "teacher.offline")

    def train_settings(self, train):
        section = self.options[self.name]
        return {**train, "lr": section["lr"], "weight_decay": section["weight_decay"]}

    def build_model(self, options, store, num_classes):
        from ..teacher.video_classifier import clip_classifier

        return clip_classifier(store, options["teacher"]["cache_dir"], options["teacher"]["offline"])

    def loss(self, student, batch, step=0):
        return labeled_ce(student, batch)
