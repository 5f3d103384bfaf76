"""The method zoo: each algorithm is a small registered class that only defines its loss.

The shared trainer (svar/trainer.py) builds batches and steps the optimiser; a method receives
the student and a batch and returns (loss, logs). A batch holds:

    x_l, y_l     labeled clips (uint8 [B, T, H, W, 3]) and their labels
    t_l          the teacher's video features of the labeled clips ([B, D], L2-normalised)
    x_u, t_u     unlabeled clips and their teacher features (methods with `uses_unlabeled`)
    pl_u         teacher pseudo-label probabilities of the unlabeled clips ([B_u, C])

Teacher-only baselines (`clip_zeroshot`, `clip_linear_probe`) train no student: they define
`fit`, which turns the teacher's features into a classifier head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

METHODS: dict[str, type] = {}


def register(cls):
    METHODS[cls.name] = cls
    return cls


def get_method(name: str, options: dict | None = None):
    if name not in METHODS:
        raise ValueError(f"methods: unknown method {name!r}; choose from {sorted(METHODS)}")
    return METHODS[name](options or {})


def distill_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Distance between projected student embeddings and teacher features."""
    if kind == "cosine":
        return (1 - F.cosine_similarity(pred, target, dim=-1)).mean()
    if kind == "mse":
        return F.mse_loss(F.normalize(pred, dim=-1), target)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(F.normalize(pred, dim=-1), target)
    raise ValueError(f"distill.loss: unknown loss {kind!r}; choose cosine, mse or smooth_l1")


class Method:
    name = ""
    trains_student = True
    uses_unlabeled = False

    def __init__(self, options: dict):
        self.options = options

    def loss(self, student, batch) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError


@register
class Supervised(Method):
    """Cross-entropy on the labeled clips only: the floor every SSL method must beat."""

    name = "supervised"

    def loss(self, student, batch):
        logits, _ = student(batch["x_l"])
        ce = F.cross_entropy(logits, batch["y_l"])
        return ce, {"ce": ce.item()}


@register
class Distill(Method):
    """Supervised CE plus feature distillation on labeled and unlabeled clips.

    The student's embedding, through a linear projection, is pulled towards the frozen
    teacher's video feature (the mean of its frame features).
    """

    name = "distill"
    uses_unlabeled = True

    def distillation(self, student, batch):
        x = torch.cat([batch["x_l"], batch["x_u"]])
        t = torch.cat([batch["t_l"], batch["t_u"]])
        logits, emb = student(x)
        kd = distill_loss(student.project(emb), t, self.options["distill"]["loss"])
        return logits, kd

    def loss(self, student, batch):
        logits, kd = self.distillation(student, batch)
        n_l = batch["x_l"].shape[0]
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        loss = ce + self.options["distill"]["weight"] * kd
        return loss, {"ce": ce.item(), "distill": kd.item()}


@register
class DistillPL(Distill):
    """Çelik, Küçükmanisa & Urhan (2023): feature distillation plus teacher pseudo-labels.

    Unlabeled clips whose teacher zero-shot confidence reaches the threshold add a
    cross-entropy term towards the teacher's predicted class.
    """

    name = "distill_pl"

    def loss(self, student, batch):
        logits, kd = self.distillation(student, batch)
        n_l = batch["x_l"].shape[0]
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        conf, target = batch["pl_u"].max(dim=1)
        mask = (conf >= self.options["pseudo_label"]["threshold"]).float()
        pl = (F.cross_entropy(logits[n_l:], target, reduction="none") * mask).mean()
        loss = ce + self.options["distill"]["weight"] * kd + self.options["pseudo_label"]["weight"] * pl
        return loss, {"ce": ce.item(), "distill": kd.item(), "pl": pl.item(), "pl_mask": mask.mean().item()}


class TeacherBaseline(Method):
    trains_student = False

    def fit(self, features_l, labels_l, text_embeddings, logit_scale, num_classes):
        """Return (weight [C, D], bias [C]) of a linear classifier on teacher video features."""
        raise NotImplementedError


@register
class ClipZeroshot(TeacherBaseline):
    """The teacher alone: cosine similarity to the class-name prompt embeddings. Uses no label."""

    name = "clip_zeroshot"

    def fit(self, features_l, labels_l, text_embeddings, logit_scale, num_classes):
        return logit_scale * text_embeddings.float(), torch.zeros(num_classes)


@register
class ClipLinearProbe(TeacherBaseline):
    """Multinomial logistic regression on the labeled videos' teacher features (L-BFGS)."""

    name = "clip_linear_probe"

    def fit(self, features_l, labels_l, text_embeddings, logit_scale, num_classes):
        dim = features_l.shape[1]
        weight = torch.zeros(num_classes, dim, requires_grad=True)
        bias = torch.zeros(num_classes, requires_grad=True)
        l2 = self.options["linear_probe"]["l2"]
        opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=self.options["linear_probe"]["max_iter"],
                                line_search_fn="strong_wolfe")
        x = features_l.float() * logit_scale  # CLIP's scale keeps the problem well conditioned

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(x @ weight.T + bias, labels_l) + l2 * weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return (weight.detach() * logit_scale), bias.detach()
