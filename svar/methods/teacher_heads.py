"""Teacher-feature heads: classifiers on the teacher's stored features of the labeled videos. No
clip is decoded, no video student trained. Each head is registered twice: as a method a config
names (METHODS), and in TEACHER_HEADS, which says how to `fit` it and how its checkpoint scores
videos (`logits`, by the checkpoint's `kind`)."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from ..registry import Registry
from ..teacher.store import frame_features, video_conditioned, video_features, zeroshot_logits
from .base import METHODS
from .terms import fit_linear_probe

TEACHER_HEADS = Registry("teacher-feature head", "methods")


def register(cls):
    """Register a head as a method and as a teacher-feature head."""
    return TEACHER_HEADS.register(METHODS.register(cls))


class TeacherHead:
    """A head on the teacher's video features: `fit_linear` gives (weight, bias) of a linear
    classifier (clip_zeroshot, clip_linear_probe); or override `fit` and `logits` (temporal_probe)."""

    name = ""
    trains_student = False
    needs_teacher_weights = False
    kind = "teacher_head"  # the checkpoint's kind: what `logits` reads

    def __init__(self, options: dict):
        self.options = options

    @classmethod
    def reads(cls, config: dict) -> tuple[str, ...]:
        """The config keys fitting it reads."""
        return ()

    @classmethod
    def evaluate_reads(cls) -> tuple[str, ...]:
        return ()  # scored on the stored teacher features: no clips, no device

    def fit_linear(self, features_l, labels_l, store: dict, num_classes: int):
        """(weight [C, D], bias [C]) of a linear classifier on teacher video features."""
        raise NotImplementedError

    def fit(self, store: dict, labeled, num_classes: int, seed: int) -> tuple[dict, list[dict]]:
        """(the checkpoint's head: `kind` and what `logits` reads, the training curve's rows) of a
        head fitted on the labeled videos (`labeled`: split rows) of `store`."""
        weight, bias = self.fit_linear(video_features(store, labeled["video_id"]),
                                       torch.tensor(labeled["label"].to_numpy()), store, num_classes)
        return {"kind": self.kind, "weight": weight, "bias": bias}, []

    @classmethod
    def logits(cls, ckpt: dict, store: dict, video_ids) -> torch.Tensor:
        return video_features(store, video_ids) @ ckpt["weight"].T + ckpt["bias"]


def head_logits(ckpt: dict, store: dict, video_ids) -> torch.Tensor:
    """A teacher-feature head's logits of videos, from their stored teacher features."""
    for head in TEACHER_HEADS.names():
        if TEACHER_HEADS[head].kind == ckpt["kind"]:
            return TEACHER_HEADS[head].logits(ckpt, store, video_ids)
    raise ValueError(f"not a teacher-feature head: checkpoint kind {ckpt['kind']!r}")


class TemporalHead(nn.Module):
    """A small temporal model over the teacher's frame features [B, k, D]: a learned position
    per frame, `layers` pre-norm transformer encoder layers (0: none, the mean of the frames),
    the mean over time L2-normalised, and a linear classifier initialised as the zero-shot one
    (class-prompt embeddings × logit scale)."""

    def __init__(self, dim: int, frames: int, num_classes: int, layers: int, heads: int):
        super().__init__()
        self.position = nn.Parameter(torch.zeros(frames, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False) if layers else nn.Identity()
        self.head = nn.Linear(dim, num_classes)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.encoder(frames + self.position)
        return self.head(F.normalize(x.mean(1), dim=-1))


@register
class TemporalProbe(TeacherHead):
    """A temporal model on the teacher's own frame features (TemporalHead), trained with
    cross-entropy on the labeled videos only (AdamW, `temporal_probe.steps` steps of
    `temporal_probe.batch_size` videos, seeded). Against clip_linear_probe it says what modelling
    time on top of the frozen image teacher buys; against the students, whether a 3D student is
    needed at all."""

    name = "temporal_probe"
    kind = "teacher_temporal"

    @classmethod
    def reads(cls, config):
        return ("temporal_probe",)

    def fit(self, store, labeled, num_classes, seed):
        opts = self.options[self.name]
        frames = frame_features(store, labeled["video_id"])
        labels = torch.tensor(labeled["label"].to_numpy())
        dim = frames.shape[2]
        if dim % opts["heads"]:
            raise ValueError(f"temporal_probe.heads: {opts['heads']} does not divide the teacher's feature width {dim}")
        config = {"dim": dim, "frames": frames.shape[1], "num_classes": num_classes, "layers": opts["layers"],
                  "heads": opts["heads"]}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = TemporalHead(**config)
        with torch.no_grad():
            head.head.weight.copy_(store["logit_scale"] * store["text_embeddings"].float())
            head.head.bias.zero_()
        optimizer = torch.optim.AdamW(head.parameters(), lr=opts["lr"], weight_decay=opts["weight_decay"])
        generator = torch.Generator().manual_seed(seed)
        curve = []
        for step in range(opts["steps"]):
            idx = torch.randint(len(labels), (min(opts["batch_size"], len(labels)),), generator=generator)
            loss = F.cross_entropy(head(frames[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            curve.append({"step": step, "lr": opts["lr"], "loss": float(loss.detach())})
        return {"kind": self.kind, "config": config, "state_dict": head.state_dict()}, curve

    @classmethod
    def logits(cls, ckpt, store, video_ids):
        head = TemporalHead(**ckpt["config"])
        head.load_state_dict(ckpt["state_dict"])
        with torch.no_grad():
            return head.eval()(frame_features(store, video_ids))


@register
class ClipZeroshot(TeacherHead):
    """The teacher alone: cosine similarity to the class-name prompt embeddings. Uses no label."""

    name = "clip_zeroshot"

    def fit_linear(self, features_l, labels_l, store, num_classes):
        return store["logit_scale"] * store["text_embeddings"].float(), torch.zeros(num_classes)

    @classmethod
    def logits(cls, ckpt, store, video_ids):
        if video_conditioned(store):  # X-CLIP: no fixed class matrix; its per-video logits (svar.teacher.store)
            return zeroshot_logits(store, None, video_ids)
        return super().logits(ckpt, store, video_ids)


@register
class ClipLinearProbe(TeacherHead):
    """Multinomial logistic regression on the labeled videos' teacher features (L-BFGS)."""

    name = "clip_linear_probe"

    @classmethod
    def reads(cls, config):
        return ("linear_probe",)

    def fit_linear(self, features_l, labels_l, store, num_classes):
        return fit_linear_probe(features_l, labels_l, store["logit_scale"], num_classes, self.options["linear_probe"])
