"""Teacher backends: which library encodes the videos and the class prompts (`teacher.backend`).

  open_clip  an open_clip image encoder: each sampled frame encoded alone, one store row a frame;
             the video feature is the mean of the frame features (svar.teacher.openclip_teacher)
  xclip      Hugging Face transformers' X-CLIP: the video encoder's own temporal video feature,
             one store row a clip, and prompt-conditioned zero-shot logits
             (svar.teacher.xclip_teacher)

A teacher is named by one string, its model: `<backend>:<name>` for every backend but open_clip
(whose names stay as they always were: ViT-B-32, local-dir:..., hf-hub:...). `teacher.backend`
says the same thing in its own key; svar.config.grid_teachers joins the two into that one string
(`qualified_model`), so every job, receipt and folder name below the config sees the backend in
the model name and nothing else has to carry it.

Each backend says where its weights come from and fetches them (offline afterwards, like every
weight: rule teacher_weights, `svar fetch-weights`), what frames it takes (`sampling_problems`),
and loads a `LoadedTeacher`, which encodes batches of videos into the store's per-video tensors
(svar.teacher.store: `frame_features`, and for X-CLIP `zeroshot_cosines`) and the class prompts
into `text_embeddings`. The store, its readers, the methods and the report stay backend-agnostic.
"""

from __future__ import annotations

import logging
import os

import torch

from ..config import default, qualified_model
from . import openclip_teacher, xclip_teacher  # noqa: F401  (each registers itself)
from .backend_base import TEACHER_BACKENDS, LoadedTeacher, TeacherBackend

log = logging.getLogger(__name__)


def split_model(model_name: str) -> tuple[TeacherBackend, str]:
    """(backend, its model name) of a teacher's model string: `<backend>:<name>` for a registered
    backend other than the default, else the default backend (open_clip) and the name as given."""
    prefix, sep, rest = model_name.partition(":")
    if sep and prefix in TEACHER_BACKENDS and prefix != default("teacher.backend"):
        return TEACHER_BACKENDS[prefix], rest
    return TEACHER_BACKENDS[default("teacher.backend")], model_name


def backend_name(model_name: str) -> str:
    return split_model(model_name)[0].name


def weights_source(model_name: str, pretrained: str | None) -> str:
    backend, model = split_model(model_name)
    return backend.weights_source(model, pretrained)


def teacher_files(model_name: str, pretrained: str | None, cache_dir) -> list:
    backend, model = split_model(model_name)
    return backend.files(model, pretrained, cache_dir)


def fetch_weights(model_name: str, pretrained: str | None, cache_dir) -> str | None:
    backend, model = split_model(model_name)
    return backend.fetch(model, pretrained, cache_dir)


def teacher_problems(model_name: str, pretrained: str, key: str, sampling: dict | None = None,
                     cache_dir=None) -> list[str]:
    """What is wrong with one teacher (`key`: teacher or teachers[i]): its model and weights,
    and, given the config's sampling spec, whether the model takes those frames."""
    backend, model = split_model(model_name)
    out = backend.problems(model, pretrained, key)
    if sampling is not None and not out:
        out += backend.sampling_problems(model, sampling, cache_dir, key)
    return out


def load_teacher(model_name: str, pretrained: str | None, device, cache_dir=None,
                 offline: bool | None = None) -> LoadedTeacher:
    backend, model = split_model(model_name)
    return backend.load(model, pretrained, torch.device(device), cache_dir=cache_dir, offline=offline)


def weights_receipt(model_name: str, pretrained: str | None, cache_dir: str | None, out) -> dict:
    """Fetch a teacher's weights (fetch_weights) and write a receipt: what was fetched, where it
    lies, and each file's size and sha256 (one file, or every file of a snapshot folder). Rule
    teacher_weights's output; rule teacher_shard depends on it, so the download happens once, on
    a machine with internet, before any shard job starts."""
    from ..atomic import write_json
    from ..download import file_digests

    path = fetch_weights(model_name, pretrained, cache_dir)
    receipt = {"model": model_name, "pretrained": str(pretrained), "cache_dir": str(cache_dir or ""),
               "path": str(path) if path else None}
    if path and os.path.isfile(path):
        receipt.update(bytes=os.path.getsize(path), sha256=file_digests(path, ["sha256"])["sha256"])
    elif path and os.path.isdir(path):  # a snapshot folder (X-CLIP): every file in it
        receipt["files"] = {
            name: {"bytes": os.path.getsize(os.path.join(path, name)),
                   "sha256": file_digests(os.path.join(path, name), ["sha256"])["sha256"]}
            for name in sorted(os.listdir(path)) if os.path.isfile(os.path.join(path, name))}
    write_json(out, receipt)
    log.info("teacher weights of %s / %s: %s", model_name, pretrained, receipt["path"])
    return receipt


__all__ = ["TEACHER_BACKENDS", "LoadedTeacher", "TeacherBackend", "split_model", "qualified_model"]
