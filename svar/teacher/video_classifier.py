"""The teacher's image encoder as a video classifier: what `clip_finetune` trains.

Each frame of a clip goes through the CLIP image encoder at its own input size and
normalisation; the frame features are averaged over time (ViFi-CLIP's temporal pooling), each
L2-normalised first as the teacher's stored video features are (svar.teacher.store), and the
mean normalised again; a linear head initialised from the class-prompt embeddings times the
logit scale scores them: before any step the classifier is the teacher's zero-shot one on these
frames. It keeps the students' forward contract (`forward(clips) -> (logits, embedding)`, `arch`,
`init`), so the shared trainer, validation and evaluation run it unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# a checkpoint's `model` kind for this classifier (svar.students.model_from_checkpoint)
KIND = "clip_video"


class ClipVideoClassifier(nn.Module):
    def __init__(self, visual: nn.Module, mean, std, image_size: int, dim: int, num_classes: int, model_name: str):
        super().__init__()
        self.visual = visual
        self.head = nn.Linear(dim, num_classes)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float).view(1, 3, 1, 1))
        self.image_size, self.model_name = int(image_size), model_name
        self.arch = f"clip:{model_name}"
        self.init = "random"

    def describe(self) -> dict:
        """What evaluation needs to rebuild it before loading its state dict."""
        return {"kind": KIND, "teacher_model": self.model_name, "image_size": self.image_size,
                "dim": self.head.in_features, "num_classes": self.head.out_features,
                "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def forward(self, clips_uint8: torch.Tensor):
        """clips uint8 [B, T, H, W, 3] -> (logits [B, C], embedding [B, D])."""
        b, t = clips_uint8.shape[:2]
        x = clips_uint8.flatten(0, 1).permute(0, 3, 1, 2).float().div(255)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=True)
        x = (x - self.mean) / self.std
        frames = F.normalize(self.visual(x).float(), dim=-1).view(b, t, -1)
        emb = F.normalize(frames.mean(1), dim=-1)
        return self.head(emb), emb


def _encoder(model_name: str, pretrained, cache_dir=None, offline=None):
    from .preprocess import image_size
    from .weights import create_teacher

    model, pre, _ = create_teacher(model_name, pretrained, torch.device("cpu"), cache_dir=cache_dir, offline=offline)
    return model, pre["mean"], pre["std"], image_size(pre)


def clip_classifier(store: dict, cache_dir=None, offline=None) -> ClipVideoClassifier:
    """The classifier made from the very weights that made the feature store's features (its
    meta: model and weights), its head the store's class-prompt embeddings × logit scale."""
    meta = store["meta"]
    pretrained = None if meta["random_weights"] else meta["pretrained"]
    model, mean, std, size = _encoder(meta["model"], pretrained, cache_dir, offline)
    text = store["text_embeddings"].float()
    classifier = ClipVideoClassifier(model.visual.requires_grad_(True), mean, std, size, text.shape[1], text.shape[0],
                                     meta["model"])
    with torch.no_grad():
        classifier.head.weight.copy_(store["logit_scale"] * text)
        classifier.head.bias.zero_()
    classifier.init = f"the teacher's weights ({meta['model']} / {meta['pretrained']}), zero-shot head"
    return classifier


def classifier_from_checkpoint(described: dict, state_dict: dict) -> ClipVideoClassifier:
    """A trained classifier from its checkpoint (`describe()` and its state dict)."""
    model, _, _, _ = _encoder(described["teacher_model"], None)  # random weights: every one is then loaded
    classifier = ClipVideoClassifier(model.visual, described["mean"], described["std"], described["image_size"],
                                     described["dim"], described["num_classes"], described["teacher_model"])
    classifier.load_state_dict(state_dict)
    return classifier
