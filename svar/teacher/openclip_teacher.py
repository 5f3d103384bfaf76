"""The open_clip backend: an image encoder, each sampled frame encoded alone (svar's teacher since
its start). One store row a frame ([N, frames a video, D]); the video feature is their mean
(svar.teacher.store). Its weights are svar.teacher.weights'.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F

from ..device import autocast
from . import weights
from .backend_base import TEACHER_BACKENDS, LoadedTeacher, TeacherBackend
from .prompts import class_prompts
from .sampling import frames_per_store_row


@torch.no_grad()
def encode_frames(model, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Normalised frames [M, 3, S, S] on the device -> float32 features [M, D]."""
    with autocast(device):
        return model.encode_image(x).float()


@torch.no_grad()
def encode_text(model, tokenizer, class_names, templates, device) -> torch.Tensor:
    """Class embeddings: each template filled with the class's words, encoded, averaged."""
    embeddings = []
    for name in class_names:
        tokens = tokenizer(class_prompts(name, templates)).to(device)
        with autocast(device):
            e = F.normalize(model.encode_text(tokens).float(), dim=-1).mean(0)
        embeddings.append(F.normalize(e, dim=-1))
    if not embeddings:
        return torch.zeros(0, int(model.text_projection.shape[-1]) if hasattr(model, "text_projection") else 0)
    return torch.stack(embeddings).cpu()


class ClassText:
    """A backend's encoded class prompts: `embeddings` [C, D], the store's text_embeddings."""

    def __init__(self, embeddings: torch.Tensor):
        self.embeddings = embeddings


class LoadedOpenClip(LoadedTeacher):
    def __init__(self, model, pre: dict, tokenizer, device: torch.device):
        self.model, self.preprocess, self.tokenizer, self.device = model, pre, tokenizer, device
        self.logit_scale = float(model.logit_scale.exp().item())

    def rows_per_video(self, spec: dict) -> int:
        return frames_per_store_row(spec)

    def encode_text(self, class_names, templates) -> ClassText:
        return ClassText(encode_text(self.model, self.tokenizer, class_names, templates, self.device))

    def encode_videos(self, x: torch.Tensor, n_videos: int, spec: dict, text) -> dict:
        features = encode_frames(self.model, x, self.device)
        return {"frame_features": features.view(n_videos, self.rows_per_video(spec), -1)}

    def feature_dim(self) -> int:
        return getattr(self.model.visual, "output_dim", None) or int(self.model.text_projection.shape[-1])


def weights_file_problems(path: str, key: str) -> list[str]:
    """A teacher's weights file (`key`) exists and is a file, checked before any job: the job
    opens it as given, relative to the workflow's folder."""
    if Path(path).is_file():
        return []
    if Path(path).is_dir():
        return [f"{key}: {path} is a folder, not a checkpoint file; name the weights file in it (an open_clip "
                "model's folder with its open_clip_config.json is teacher.model local-dir:FOLDER)"]
    return [f"{key}: {path} does not exist (seen from {Path.cwd()}); name an existing checkpoint file (.pt, "
            ".pth, .bin, .safetensors), a pretrained tag, or none"]


class OpenClipBackend(TeacherBackend):
    name = "open_clip"
    small_model = "svar-tiny-clip"
    models = "an open_clip model name (ViT-B-32, svar-tiny-clip ...), local-dir:FOLDER or hf-hub:ORG/REPO"

    def weights_source(self, model, pretrained):
        return weights.weights_source(model, pretrained)

    def files(self, model, pretrained, cache_dir):
        return weights.teacher_files(model, pretrained, cache_dir)

    def fetch(self, model, pretrained, cache_dir):
        return weights.fetch_weights(model, pretrained, cache_dir)

    def load(self, model, pretrained, device, cache_dir=None, offline=None):
        return LoadedOpenClip(*weights.create_teacher(model, pretrained, device, cache_dir=cache_dir, offline=offline),
                              device)

    def problems(self, model: str, pretrained: str, key: str) -> list[str]:
        out = []
        generated = pretrained == weights.GENERATED
        if generated:
            pretrained = "checkpoint.pt"  # a file, made by rule pretrain_teacher
        source = weights.weights_source(model, pretrained)
        if source == "file" and not generated:
            out += weights_file_problems(pretrained, f"{key}.pretrained")
        if source == "local-dir":
            folder = Path(model.split(":", 1)[1]).expanduser()
            if not (folder / "open_clip_config.json").is_file():
                out.append(f"{key}.model: {model} needs a folder holding open_clip_config.json and the weights; "
                           f"{folder / 'open_clip_config.json'} does not exist")
        elif source == "hf-hub":
            if not re.fullmatch(r"hf-hub:[\w.-]+/[\w.-]+", model):
                out.append(f"{key}.model: {model!r} is not hf-hub:ORG/REPO")
        elif not (source in ("file", "random") and model in weights.own_model_names()):
            # a model of svar's own with a checkpoint file (or random weights) needs no look at
            # open_clip's registry; anything else does (its models, its pretrained tags)
            import open_clip

            weights.register_model_configs()
            if model not in open_clip.list_models():
                out.append(f"{key}.model: unknown open_clip model {model!r}; see open_clip.list_models() or "
                           "svar/model_configs/ (or use local-dir:PATH, hf-hub:ORG/REPO, or another "
                           "teacher.backend)")
            elif source == "tag" and not open_clip.get_pretrained_cfg(model, pretrained):
                out.append(f"{key}.pretrained: {pretrained!r} is neither a checkpoint file nor a pretrained tag of "
                           f"{model}; its tags: {open_clip.list_pretrained_tags_by_model(model)}")
        return out


TEACHER_BACKENDS.register(OpenClipBackend())
