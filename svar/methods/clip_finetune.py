"""Few-shot fine-tuning of the teacher's own CLIP on the labeled videos: ViFi-CLIP."""

from __future__ import annotations

from ..clips.finetune_clips import SECTION, finetune_spec
from ..clips.sampling import crop_keys
from .base import METHODS, StudentMethod, labeled_ce


@METHODS.register
class ClipFinetune(StudentMethod):
    """ViFi-CLIP's fine-tuning (Rasheed et al. 2023) of the teacher's CLIP on the labeled videos
    only: `clip_finetune.frames` frames sampled over the whole video (one a segment) at the
    encoder's input size (svar.clips.finetune_clips), each through the CLIP image encoder, the
    frame features averaged; cosine similarity with the text encoder's embeddings of the class
    prompts (`clip_finetune.templates`) times the logit scale; cross-entropy. `clip_finetune.tune`
    says which towers are trained (image, text or both: ViFi-CLIP's); the others keep their
    weights (svar.teacher.video_classifier). Its optimiser's learning rate and weight decay are
    `clip_finetune.lr` and `.weight_decay`; the trainer's other settings are `train`'s, its crop
    and flip included. No unlabeled video is used."""

    name = SECTION
    trains_video_student = False  # not the student's architecture, initialisation, optimiser settings or clips
    needs_teacher_weights = True
    clip_section = SECTION

    def __init__(self, options: dict):
        super().__init__(options)
        self._classifier = None

    @classmethod
    def reads(cls, config):
        return (cls.name, "teacher.cache_dir", "teacher.offline")

    @classmethod
    def clip_reads(cls, config):
        """Its frames are its own section's (`reads`: the whole section); the crop is train's."""
        return crop_keys(config)

    def clip_spec(self, options, store):
        """Its own frames, cropped to the encoder's input size (the model's, so built first)."""
        return finetune_spec(options[self.name], self.classifier(options, store).image_size)

    def classifier(self, options: dict, store: dict):
        """The classifier it trains, built once (its input size decides the clips' crop)."""
        if self._classifier is None:
            from ..teacher.video_classifier import clip_classifier

            section, teacher = options[self.name], options["teacher"]
            self._classifier = clip_classifier(store, section["tune"], section["templates"], teacher["cache_dir"],
                                               teacher["offline"])
        return self._classifier

    def train_settings(self, train):
        section = self.options[self.name]
        return {**train, "lr": section["lr"], "weight_decay": section["weight_decay"]}

    def build_model(self, options, store, num_classes):
        return self.classifier(options, store)

    def loss(self, student, batch, step=0):
        return labeled_ce(student, batch)
