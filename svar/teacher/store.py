"""The teacher's feature store: what training and evaluation read of the teacher, and all they read.

One torch file per dataset (rule teacher): `video_ids`, `frame_features` float16 [N, k, D],
`text_embeddings` [C, D] (the class prompts), `logit_scale`, `class_names` and `meta` (backend,
model, weights, sampling, templates, image size), whatever the teacher's backend
(svar.teacher.backends). k is the backend's rows a video: open_clip's sampled frames, X-CLIP's
clips (one, its video embedding, unless teacher.sampling.mode is clips).

A backend whose class embeddings depend on the video (X-CLIP's prompt generator conditions them
on each video's patch tokens: svar.teacher.xclip_teacher) also stores `zeroshot_cosines` [N, C],
each video's cosine similarity to its own conditioned class embeddings; its zero-shot logits are
those times logit_scale, not the video feature against `text_embeddings`.
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


# the store's tensors with one row a video, in video_ids order (extraction, shards and gather
# carry each of them that a store has)
PER_VIDEO_KEYS = ("frame_features", "zeroshot_cosines")


def _rows(store: dict, video_ids) -> torch.Tensor:
    index = {v: i for i, v in enumerate(store["video_ids"])}
    missing = [v for v in video_ids if v not in index]
    if missing:
        raise KeyError(f"teacher store lacks {len(missing)} videos, e.g. {missing[0]}; rerun `svar teacher`")
    return torch.as_tensor(np.array([index[v] for v in video_ids], dtype=np.int64))


def frame_features(store: dict, video_ids) -> torch.Tensor:
    """The teacher's per-frame (per-clip, for X-CLIP) features of these videos [N, k, D], each L2-normalised."""
    return F.normalize(store["frame_features"][_rows(store, video_ids)].float(), dim=-1)


def video_features(store: dict, video_ids) -> torch.Tensor:
    """The teacher's video feature: the mean of its frame features, L2-normalised."""
    return F.normalize(frame_features(store, video_ids).mean(1), dim=-1)


def video_conditioned(store: dict) -> bool:
    """Whether the store's zero-shot logits are stored per video (X-CLIP's: see the module doc)."""
    return "zeroshot_cosines" in store


def zeroshot_logits(store: dict, features: torch.Tensor, video_ids=None) -> torch.Tensor:
    """The teacher's zero-shot logits of teacher video features (`video_features` of `video_ids`)
    against the class prompts. A video-conditioned store (X-CLIP) has them per video: its stored
    cosines of `video_ids` times logit_scale, which are X-CLIP's own logits_per_video."""
    if video_conditioned(store):
        if video_ids is None:
            raise ValueError(f"this teacher's ({store['meta'].get('backend')}) zero-shot logits depend on the video, "
                             "not on its feature alone: pass video_ids to zeroshot_logits")
        return store["logit_scale"] * store["zeroshot_cosines"][_rows(store, video_ids)].float()
    return store["logit_scale"] * features @ store["text_embeddings"].float().T
