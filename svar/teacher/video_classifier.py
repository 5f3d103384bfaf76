"""The teacher's CLIP as a video classifier: what `clip_finetune` trains (ViFi-CLIP, Rasheed et al.
2023, muzairkhattak/ViFi-CLIP trainers/vificlip.py).

Each frame of a clip goes through the CLIP image encoder at its own input size and
normalisation; the frame features are averaged over time (ViFi-CLIP's temporal pooling), each
L2-normalised first as the teacher's stored video features are (svar.teacher.store), and the
mean normalised again. The classifier is the text encoder's embeddings of the class prompts
(each template filled with the class's words, encoded, normalised, averaged over templates and
normalised, as the teacher's zero-shot classifier is made: svar.teacher.openclip_teacher.encode_text);
the logits are the cosine similarities times the logit scale, so before any step with the
teacher's templates it is the teacher's zero-shot classifier on these frames.

`tune` says which towers get gradients (ViFi-CLIP's TRAINER.ViFi_CLIP.USE): `image`, `text` or
`both`. With the text tower tuned the class embeddings are recomputed from the prompts at every
forward; with only the image tower tuned they are fixed, computed once (and the text tower is not
kept). As in ViFi-CLIP the prompts' token embeddings are never tuned (it encodes them once, a
buffer: vificlip.py:122-125), and the logit scale is tuned with `both` only (vificlip.py:221-239).
Every other parameter outside the tuned towers has requires_grad False, so no optimiser holds it.

It keeps the students' forward contract (`forward(clips) -> (logits, embedding)`, `arch`,
`init`), so the shared trainer, validation and evaluation run it unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .prompts import class_prompts, resolve_templates

# a checkpoint's `model` kind for this classifier (svar.students.model_from_checkpoint)
KIND = "clip_video"
# which towers get gradients, by clip_finetune.tune; "scale" is the logit scale
TUNED = {"image": {"image"}, "text": {"text"}, "both": {"image", "text", "scale"}}


def tower_of(name: str) -> str | None:
    """The tower an open_clip parameter belongs to: image, text or scale; None for the token
    embeddings, which no setting tunes."""
    if name.startswith("visual."):
        return "image"
    if name in ("logit_scale", "logit_bias"):
        return "scale"
    if name.startswith("token_embedding."):
        return None
    return "text"


def prompt_embeddings(model: nn.Module, tokens: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[C, D] class embeddings from the prompts' tokens ([C × templates, L], class by class)."""
    prompts = F.normalize(model.encode_text(tokens).float(), dim=-1)
    return F.normalize(prompts.view(num_classes, -1, prompts.shape[-1]).mean(1), dim=-1)


class ClipVideoClassifier(nn.Module):
    def __init__(self, model: nn.Module, mean, std, image_size: int, model_name: str, tune: str,
                 prompt_tokens: torch.Tensor, num_classes: int):
        super().__init__()
        if tune not in TUNED:
            raise ValueError(f"clip_finetune.tune: {tune!r} is not one of {list(TUNED)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float).view(1, 3, 1, 1))
        self.register_buffer("prompt_tokens", prompt_tokens)
        self.image_size, self.model_name, self.tune, self.num_classes = int(image_size), model_name, tune, num_classes
        self.arch = f"clip:{model_name}"
        self.init = "random"
        for name, p in model.named_parameters():
            p.requires_grad_(tower_of(name) in TUNED[tune])
        if tune == "image":  # the text tower is frozen: its class embeddings once, and no text tower kept
            with torch.no_grad():
                self.register_buffer("class_embeddings", prompt_embeddings(model, prompt_tokens, num_classes))
            self.register_buffer("logit_scale", model.logit_scale.detach().clone())
            self.visual = model.visual
        else:
            self.clip = model

    def describe(self) -> dict:
        """What evaluation needs to rebuild it before loading its state dict."""
        return {"kind": KIND, "teacher_model": self.model_name, "image_size": self.image_size, "tune": self.tune,
                "num_classes": self.num_classes, "mean": self.mean.flatten().tolist(),
                "std": self.std.flatten().tolist()}

    def classes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(class embeddings [C, D], the log of the logit scale): recomputed through the text
        tower when it is tuned."""
        if self.tune == "image":
            return self.class_embeddings, self.logit_scale
        return prompt_embeddings(self.clip, self.prompt_tokens, self.num_classes), self.clip.logit_scale

    def forward(self, clips_uint8: torch.Tensor):
        """clips uint8 [B, T, H, W, 3] -> (logits [B, C], embedding [B, D])."""
        b, t = clips_uint8.shape[:2]
        x = clips_uint8.flatten(0, 1).permute(0, 3, 1, 2).float().div(255)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=True)
        x = (x - self.mean) / self.std
        visual = self.visual if self.tune == "image" else self.clip.visual
        frames = F.normalize(visual(x).float(), dim=-1).view(b, t, -1)
        emb = F.normalize(frames.mean(1), dim=-1)
        text, log_scale = self.classes()
        return log_scale.float().exp() * emb @ text.float().t(), emb


def _encoder(model_name: str, pretrained, cache_dir=None, offline=None):
    from .preprocess import image_size
    from .weights import create_teacher

    model, pre, tokenizer = create_teacher(model_name, pretrained, torch.device("cpu"), cache_dir=cache_dir,
                                           offline=offline)
    return model, pre["mean"], pre["std"], image_size(pre), tokenizer


def clip_classifier(store: dict, tune: str, templates, cache_dir=None, offline=None) -> ClipVideoClassifier:
    """The classifier made from the very weights that made the feature store's features (its
    meta: model and weights), its classes the store's, prompted with `templates`
    (clip_finetune.templates: templates with one {}, or a stored prompt set's name)."""
    meta = store["meta"]
    pretrained = None if meta["random_weights"] else meta["pretrained"]
    model, mean, std, size, tokenizer = _encoder(meta["model"], pretrained, cache_dir, offline)
    templates = resolve_templates(templates)
    tokens = torch.cat([tokenizer(class_prompts(name, templates)) for name in store["class_names"]])
    classifier = ClipVideoClassifier(model, mean, std, size, meta["model"], tune, tokens, len(store["class_names"]))
    classifier.init = (f"the teacher's weights ({meta['model']} / {meta['pretrained']}), tuned: {tune}, "
                       f"classes prompted with {list(templates)}")
    return classifier


def classifier_from_checkpoint(described: dict, state_dict: dict) -> ClipVideoClassifier:
    """A trained classifier from its checkpoint (`describe()` and its state dict)."""
    model, _, _, _, _ = _encoder(described["teacher_model"], None)  # random weights: every one is then loaded
    classifier = ClipVideoClassifier(model, described["mean"], described["std"], described["image_size"],
                                     described["teacher_model"], described["tune"], state_dict["prompt_tokens"],
                                     described["num_classes"])
    classifier.load_state_dict(state_dict)
    return classifier
