"""The method zoo: each algorithm is a small registered class that only defines its loss.

The shared trainer (svar/trainer.py) builds batches and steps the optimiser; a method receives
the student and a batch and returns (loss, logs). A batch holds:

    x_l, y_l     labeled clips (uint8 [B, T, H, W, 3], weakly augmented) and their labels
    t_l          the teacher's video features of the labeled clips ([B, D], L2-normalised)
    x_u, t_u     unlabeled clips (weak view) and their teacher features   (`uses_unlabeled`)
    pl_u         teacher pseudo-label probabilities of the unlabeled clips ([B_u, C]): the
                 zero-shot prediction, or a linear probe fitted on the labeled teacher features
                 (`pseudo_label_source`: teacher_zeroshot, teacher_probe); the true labels when
                 every training video is labeled
    x_u_strong   a strongly augmented view of the same frames as x_u     (`needs_strong_view`)
    tf_l, tf_u   the teacher's per-frame features ([B, k, D], L2-normalised) (`needs_frame_features`)

The trainer only builds what a method asks for, so supervised training never pays for the
unlabeled pool, and only methods that need one pay for a strong view.

Teacher-only baselines (`clip_zeroshot`, `clip_linear_probe`) train no student: they define
`fit`, which turns the teacher's features into a classifier head.

Each method declares the configuration keys it reads (`reads`, given the config: which
pseudo-label threshold a method reads depends on `pseudo_label.source`) and the trainer gets
those and no others (`options_for`): the workflow passes a training job exactly them, so a
change to a key reruns exactly the runs of the methods that read it. Evaluation's own keys
(`evaluate_reads`) are declared the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import subset
from .registry import Registry

METHODS = Registry("method", "methods")
DISTILL_LOSSES = Registry("distillation loss", "distill.loss")
PSEUDO_LABEL_SOURCES = Registry("pseudo-label source", "pseudo_label.source")
PSEUDO_LABEL_SOURCES.register("the teacher's zero-shot prediction", name="teacher_zeroshot")
PSEUDO_LABEL_SOURCES.register("a linear probe on the labeled videos' teacher features", name="teacher_probe")
PSEUDO_LABEL_SOURCES.register("the student's own (detached) prediction", name="student")

# what every student run reads: the student, and the trainer's settings but the unlabeled ratio
STUDENT_KEYS = ("student.arch", "student.sampling", "student.frames", "student.size", "student.cache_size",
                "student.cache_dir", "train.steps", "train.batch_size", "train.optimizer", "train.lr",
                "train.weight_decay", "train.warmup_steps", "train.device", "train.crop", "train.flip",
                "train.val_every", "train.ema", "train.checkpoint_every")


def clip_keys(config: dict) -> tuple[str, ...]:
    """The keys of a student's clips that depend on its modes: the stride of dense clips or the
    cached frames of segments; the padding of a random crop or the area of a random resized one."""
    dense = config["student"]["sampling"] == "dense"
    return ("student.stride" if dense else "student.cache_frames",
            "train.crop_padding" if config["train"]["crop"] == "random" else "train.crop_scale")


def get_method(name: str, options: dict | None = None):
    return METHODS[name](options or {})


def options_for(name: str, config: dict) -> dict:
    """The part of a config that method `name`'s training reads: what `svar train` is passed."""
    return subset(config, METHODS[name].reads(config))


@DISTILL_LOSSES.register
def cosine(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (1 - F.cosine_similarity(pred, target, dim=-1)).mean()


@DISTILL_LOSSES.register
def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(F.normalize(pred, dim=-1), target)


@DISTILL_LOSSES.register
def smooth_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(F.normalize(pred, dim=-1), target)


def distill_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Distance between projected student embeddings and teacher features (over the last dim)."""
    return DISTILL_LOSSES[kind](pred, target)


def masked_ce(logits: torch.Tensor, probs: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard pseudo-label cross-entropy: argmax of `probs` as the target where its confidence
    reaches `threshold`, averaged over all clips (masked ones count as zero). Returns (loss, mask)."""
    conf, target = probs.max(dim=1)
    mask = (conf >= threshold).to(logits.dtype)
    return (F.cross_entropy(logits, target, reduction="none") * mask).mean(), mask


def pseudo_label_source(options: dict) -> str:
    source = options["pseudo_label"]["source"]
    PSEUDO_LABEL_SOURCES[source]  # an unknown source is an error naming pseudo_label.source
    return source


def pseudo_label_keys(config: dict) -> tuple[str, ...]:
    """What a method taking pseudo-labels from `pseudo_label.source` reads: the source, the
    weight, the threshold that applies to it, and the probe's settings for teacher_probe."""
    source = pseudo_label_source(config)
    threshold = "pseudo_label.student_threshold" if source == "student" else "pseudo_label.threshold"
    probe = ("linear_probe",) if source == "teacher_probe" else ()
    return ("pseudo_label.source", "pseudo_label.weight", threshold, *probe)


@torch.no_grad()
def weak_view_probs(student, batch) -> torch.Tensor:
    """The student's class probabilities on the weak view of the unlabeled clips, without gradient."""
    return student(batch["x_u"])[0].float().softmax(-1)


def _logs(**terms) -> dict:
    """Detached scalars: the trainer turns them into numbers only when it writes the curve, so a
    step never waits for the GPU to finish just to log."""
    return {k: v.detach().float() for k, v in terms.items()}


class Method:
    name = ""
    trains_student = True
    uses_unlabeled = False      # batch has x_u, t_u, pl_u
    needs_strong_view = False   # batch has x_u_strong
    needs_frame_features = False  # batch has tf_l (and tf_u with uses_unlabeled)
    pseudo_label_source = None  # teacher_zeroshot / teacher_probe: batch has pl_u; student: the method's own

    def __init__(self, options: dict):
        self.options = options

    @classmethod
    def reads(cls, config: dict) -> tuple[str, ...]:
        """The config keys (whole sections, or section.key) this method's training reads."""
        return (STUDENT_KEYS + clip_keys(config) + (("train.unlabeled_ratio",) if cls.uses_unlabeled else ())
                + (("train.strong_area", "train.strong_cutout") if cls.uses_strong_view(config) else ()))

    @classmethod
    def uses_strong_view(cls, config: dict) -> bool:
        """Whether training under `config` builds the strong view (and reads its settings)."""
        return cls.needs_strong_view

    @classmethod
    def evaluate_reads(cls) -> tuple[str, ...]:
        """The config keys scoring this method's model reads (rule evaluate)."""
        return ("evaluate",)

    def loss(self, student, batch) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError


class PseudoLabels:
    """What a method taking pseudo-labels from `pseudo_label.source` adds to its base: the keys
    it reads for that source, and the targets (`pseudo_label_targets`)."""

    @classmethod
    def reads(cls, config):
        return super().reads(config) + pseudo_label_keys(config)

    def __init__(self, options):
        super().__init__(options)
        self.pseudo_label_source = pseudo_label_source(options)

    def pseudo_label_targets(self, batch, student_probs) -> tuple[torch.Tensor, float]:
        """(probabilities, threshold) of the unlabeled clips' pseudo-labels: the teacher's
        (batch pl_u, pseudo_label.threshold), or with source `student` the student's
        (`student_probs()`, pseudo_label.student_threshold)."""
        if self.pseudo_label_source == "student":
            return student_probs(), self.options["pseudo_label"]["student_threshold"]
        return batch["pl_u"], self.options["pseudo_label"]["threshold"]


@METHODS.register
class Supervised(Method):
    """Cross-entropy on the labeled clips only: the floor every SSL method must beat."""

    name = "supervised"

    def loss(self, student, batch):
        logits, _ = student(batch["x_l"])
        ce = F.cross_entropy(logits, batch["y_l"])
        return ce, _logs(ce=ce)


def frame_distill_loss(student, temporal: torch.Tensor, frames: torch.Tensor, kind: str) -> torch.Tensor:
    """Student temporal features [B, T', E], linearly interpolated in time to the teacher's k
    frames and projected, against the teacher's frame features [B, k, D], frame by frame."""
    k = frames.shape[1]
    if temporal.shape[1] != k:
        temporal = F.interpolate(temporal.transpose(1, 2), size=k, mode="linear", align_corners=False).transpose(1, 2)
    return distill_loss(student.project(temporal), frames, kind)


@METHODS.register
class Distill(Method):
    """Supervised CE plus feature distillation on labeled and unlabeled clips.

    The student's embedding, through a linear projection, is pulled towards the frozen
    teacher's video feature (the mean of its frame features). With `distill.frame_level`, the
    student's last feature map pooled over space only (its temporal features), interpolated to
    the teacher's k frames and projected, is pulled towards each of the teacher's frame
    features instead.
    """

    name = "distill"
    uses_unlabeled = True

    @classmethod
    def reads(cls, config):
        return super().reads(config) + ("distill",)

    def __init__(self, options):
        super().__init__(options)
        self.frame_level = bool(options["distill"]["frame_level"])
        self.needs_frame_features = self.frame_level

    def distillation(self, student, x, t, tf=None):
        kind = self.options["distill"]["loss"]
        if self.frame_level:
            logits, _, temporal = student.forward_temporal(x)
            return logits, frame_distill_loss(student, temporal, tf, kind)
        logits, emb = student(x)
        return logits, distill_loss(student.project(emb), t, kind)

    def unlabeled_view(self, batch):
        return batch["x_u"]

    def distill_batch(self, student, batch):
        x = torch.cat([batch["x_l"], self.unlabeled_view(batch)])
        t = torch.cat([batch["t_l"], batch["t_u"]])
        tf = torch.cat([batch["tf_l"], batch["tf_u"]]) if self.frame_level else None
        return self.distillation(student, x, t, tf)

    def loss(self, student, batch):
        logits, kd = self.distill_batch(student, batch)
        n_l = batch["x_l"].shape[0]
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        loss = ce + self.options["distill"]["weight"] * kd
        return loss, _logs(ce=ce, distill=kd)


@METHODS.register
class DistillPL(PseudoLabels, Distill):
    """Çelik, Küçükmanisa & Urhan (2023): feature distillation plus pseudo-labels.

    Unlabeled clips whose pseudo-label confidence reaches the threshold add a cross-entropy term
    towards the predicted class. `pseudo_label.source`: `teacher_zeroshot` (the teacher's
    zero-shot prediction), `teacher_probe` (a linear probe on the teacher's features fitted to
    the labeled videos) or `student` (FixMatch-style: the student's detached prediction on the
    weak view is the target for a strong view, which is also the view distilled; threshold
    `student_threshold`).
    """

    name = "distill_pl"

    def __init__(self, options):
        super().__init__(options)
        self.needs_strong_view = self.uses_strong_view(options)

    @classmethod
    def uses_strong_view(cls, config: dict) -> bool:
        return pseudo_label_source(config) == "student"

    def unlabeled_view(self, batch):
        return batch["x_u_strong"] if self.needs_strong_view else batch["x_u"]

    def loss(self, student, batch):
        probs, threshold = self.pseudo_label_targets(batch, lambda: weak_view_probs(student, batch))
        logits, kd = self.distill_batch(student, batch)
        n_l = batch["x_l"].shape[0]
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        pl, mask = masked_ce(logits[n_l:], probs, threshold)
        loss = ce + self.options["distill"]["weight"] * kd + self.options["pseudo_label"]["weight"] * pl
        return loss, _logs(ce=ce, distill=kd, pl=pl, pl_mask=mask.mean())


@METHODS.register
class PseudoLabel(PseudoLabels, Method):
    """Pseudo-labelling without distillation (Lee 2013): labeled CE plus CE on unlabeled clips
    towards confident hard pseudo-labels.

    The targets come from `pseudo_label.source`: the teacher's zero-shot prediction (default),
    a linear probe on the teacher's features of the labeled videos, or, with `student`, the
    student's own (detached) prediction on the same clip, thresholded at `student_threshold`.
    """

    name = "pseudo_label"
    uses_unlabeled = True

    def loss(self, student, batch):
        n_l = batch["x_l"].shape[0]
        logits, _ = student(torch.cat([batch["x_l"], batch["x_u"]]))
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        probs, threshold = self.pseudo_label_targets(batch, lambda: logits[n_l:].detach().float().softmax(-1))
        pl, mask = masked_ce(logits[n_l:], probs, threshold)
        loss = ce + self.options["pseudo_label"]["weight"] * pl
        return loss, _logs(ce=ce, pl=pl, pl_mask=mask.mean())


@METHODS.register
class FixMatch(Method):
    """FixMatch (Sohn et al. 2020): the student's prediction on a weak view of an unlabeled clip,
    made without gradient, is the hard target for a strong view of the same frames when its
    confidence reaches tau (`pseudo_label.student_threshold`); plus labeled CE. The unlabeled
    term is weighted by `pseudo_label.weight`. No teacher is used.
    """

    name = "fixmatch"
    uses_unlabeled = True
    needs_strong_view = True

    @classmethod
    def reads(cls, config):
        return super().reads(config) + ("pseudo_label.student_threshold", "pseudo_label.weight")

    def loss(self, student, batch):
        n_l = batch["x_l"].shape[0]
        probs = weak_view_probs(student, batch)
        logits, _ = student(torch.cat([batch["x_l"], batch["x_u_strong"]]))
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        pl, mask = masked_ce(logits[n_l:], probs, self.options["pseudo_label"]["student_threshold"])
        loss = ce + self.options["pseudo_label"]["weight"] * pl
        return loss, _logs(ce=ce, pl=pl, pl_mask=mask.mean())


class TeacherBaseline(Method):
    trains_student = False

    @classmethod
    def reads(cls, config):
        return ()

    @classmethod
    def evaluate_reads(cls):
        return ()  # scored on the stored teacher features: no clips, no device

    def fit(self, features_l, labels_l, text_embeddings, logit_scale, num_classes):
        """Return (weight [C, D], bias [C]) of a linear classifier on teacher video features."""
        raise NotImplementedError


@METHODS.register
class ClipZeroshot(TeacherBaseline):
    """The teacher alone: cosine similarity to the class-name prompt embeddings. Uses no label."""

    name = "clip_zeroshot"

    def fit(self, features_l, labels_l, text_embeddings, logit_scale, num_classes):
        return logit_scale * text_embeddings.float(), torch.zeros(num_classes)


@METHODS.register
class ClipLinearProbe(TeacherBaseline):
    """Multinomial logistic regression on the labeled videos' teacher features (L-BFGS)."""

    name = "clip_linear_probe"

    @classmethod
    def reads(cls, config):
        return ("linear_probe",)

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
