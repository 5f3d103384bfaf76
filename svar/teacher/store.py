"""The teacher's feature store: what training and evaluation read of the teacher, and all they read.

One torch file per dataset (rule teacher): `video_ids`, `frame_features` float16 [N, k, D],
`text_embeddings` [C, D] (the class prompts), `logit_scale`, `class_names` and `meta` (model,
weights, sampling, templates, image size).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..readers import load_torch
from ..receipts import check


def load_store(path) -> dict:
    # a store changed since rule teacher wrote it (its record: svar.receipts) is not read
    how = check(path)
    if how is not None and how != "missing":
        raise ValueError(f"{path}: the teacher feature store's {how} since rule teacher wrote it; delete it and "
                         "rerun (rule teacher makes it again), or restore it (dvc checkout)")
    # weights_only: a feature store is plain tensors, lists and numbers, nothing to execute
    store = load_torch(path, "teacher feature store", "teacher")
    if not isinstance(store, dict) or "frame_features" not in store:
        raise ValueError(f"{path}: not a teacher feature store (rule teacher makes one)")
    return store


def frame_features(store: dict, video_ids) -> torch.Tensor:
    """The teacher's per-frame features of these videos [N, k, D], each L2-normalised."""
    index = {v: i for i, v in enumerate(store["video_ids"])}
    missing = [v for v in video_ids if v not in index]
    if missing:
        raise KeyError(f"teacher store lacks {len(missing)} videos, e.g. {missing[0]}; rerun `svar teacher`")
    rows = torch.as_tensor(np.array([index[v] for v in video_ids], dtype=np.int64))
    return F.normalize(store["frame_features"][rows].float(), dim=-1)


def video_features(store: dict, video_ids) -> torch.Tensor:
    """The teacher's video feature: the mean of its frame features, L2-normalised."""
    return F.normalize(frame_features(store, video_ids).mean(1), dim=-1)


def zeroshot_logits(store: dict, features: torch.Tensor) -> torch.Tensor:
    """CLIP's zero-shot logits of teacher video features (`video_features`) against the class prompts."""
    return store["logit_scale"] * features @ store["text_embeddings"].float().T
