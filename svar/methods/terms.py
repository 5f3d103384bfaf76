"""The terms methods share: the masked cross-entropy towards hard pseudo-labels, the thresholds
that mask them (one fixed threshold, or FlexMatch's class-adaptive ones, as objects keeping their
own state), the unlabeled term's ramps, where pseudo-labels come from (the teacher's zero-shot
prediction, a probe on its features, or the student's own prediction), and `PseudoLabelTerm`,
the weighted pseudo-label term a method adds with its own config section."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..registry import Registry
from ..teacher.store import zeroshot_logits
from .base import detached, has_unlabeled, labeled_ce


def masked_ce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hard pseudo-label cross-entropy towards `target` where `mask` is 1, averaged over all clips
    (masked ones count as zero, as USB's consistency_loss does)."""
    return (F.cross_entropy(logits, target, reduction="none") * mask).mean()


def own_prediction(logits: torch.Tensor) -> torch.Tensor:
    """The student's own class probabilities, detached: targets it does not learn through."""
    return logits.detach().float().softmax(-1)


def every_clip(target: torch.Tensor) -> dict:
    """The pseudo-label logs of a method whose soft targets reach every unlabeled clip: their
    argmax as the pseudo-label, none masked."""
    mask = torch.ones_like(target, dtype=torch.float)
    return {"pl_mask": mask.mean(), "pseudo_labels": (target.detach(), mask)}


def unsup_ramp(step: int, warmup: int) -> float:
    """The unlabeled term's weight factor at `step`: a linear ramp from 0 to 1 over `warmup`
    steps (USB's unsup_warm_up, there a fraction of the run), 1 throughout when warmup is 0."""
    return 1.0 if warmup <= 0 else min(1.0, step / warmup)


def sigmoid_ramp(step: int, length: int) -> float:
    """exp(−5 (1 − t)²), t = step/length clipped to 1 (Laine & Aila 2017; Mean Teacher's
    consistency ramp-up); 1 throughout when length is 0."""
    if length <= 0:
        return 1.0
    t = min(1.0, max(0.0, step / length))
    return math.exp(-5.0 * (1.0 - t) ** 2)


# ---------------------------------------------------------------- thresholds

THRESHOLD_MODES = Registry("threshold mode", "<method>.threshold_mode")


@THRESHOLD_MODES.register(name="fixed")
class FixedThreshold:
    """One confidence threshold for every class: the argmax, kept where its confidence reaches tau."""

    def __init__(self, tau: float, n_unlabeled: int = 0, num_classes: int = 0, device=None):
        self.tau = tau

    def mask(self, probs: torch.Tensor, idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        conf, target = probs.max(dim=1)
        return target, (conf >= self.tau).to(probs.dtype)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@THRESHOLD_MODES.register(name="flexmatch")
class FlexMatchThresholds:
    """Class-adaptive thresholds (FlexMatch, Zhang et al. 2021), as USB's FlexMatchThresholdingHook
    keeps them with thresh_warmup: every unlabeled video remembers the class it was last
    confidently (≥ tau) predicted as (-1: never); a class's learning effect is its number of such
    videos over the largest count of any class or of the never-selected; its threshold is
    tau · β/(2 − β) (the convex mapping). Early on every β is 0, so every pseudo-label counts; a
    class the predictions rarely reach keeps a low threshold. The state is updated after the
    batch's mask is drawn, as USB does, and is saved with the run's resume checkpoint."""

    def __init__(self, tau: float, n_unlabeled: int, num_classes: int, device=None):
        self.tau = tau
        self.selected = torch.full((n_unlabeled,), -1, dtype=torch.long, device=device)
        self.learning_effect = torch.zeros(num_classes, device=device)

    def mask(self, probs: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        conf, target = probs.max(dim=1)
        beta = self.learning_effect.to(probs.dtype)[target]
        mask = (conf >= self.tau * beta / (2 - beta)).to(probs.dtype)
        select = conf >= self.tau
        self.selected[idx[select]] = target[select]
        counts = torch.bincount(self.selected + 1, minlength=len(self.learning_effect) + 1)  # [0]: never selected
        if int(counts.max()) < len(self.selected):  # USB: not while every video sits in one bucket
            self.learning_effect = counts[1:].float() / counts.max()
        return target, mask

    def state_dict(self) -> dict:
        return {"selected": self.selected, "learning_effect": self.learning_effect}

    def load_state_dict(self, state: dict) -> None:
        self.selected.copy_(state["selected"])
        self.learning_effect = state["learning_effect"].clone().to(self.selected.device)


# ---------------------------------------------------------------- pseudo-label sources

def fit_linear_probe(features: torch.Tensor, labels: torch.Tensor, logit_scale: float, num_classes: int,
                     section: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [C, D], bias [C]): multinomial logistic regression on L2-normalised teacher features
    (L-BFGS, `section`: linear_probe's l2 and max_iter), on the scale of CLIP's logits."""
    weight = torch.zeros(num_classes, features.shape[1], requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=section["max_iter"], line_search_fn="strong_wolfe")
    x = features.float() * logit_scale  # CLIP's scale keeps the problem well conditioned

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, labels) + section["l2"] * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return (weight.detach() * logit_scale), bias.detach()



# where the teacher's pseudo-labels come from (teacher_pl.source): (store, labeled and unlabeled
# split rows, teacher video features of the labeled and the unlabeled videos, classes, options) -> pl_u
TEACHER_PSEUDO_LABELS = Registry("teacher pseudo-label source", "teacher_pl.source")
# distill_pl's sources: those, or the student's own prediction
PSEUDO_LABEL_SOURCES = Registry("pseudo-label source", "distill_pl.source")


@TEACHER_PSEUDO_LABELS.register(name="teacher_zeroshot")
def teacher_zeroshot(store, labeled, unlabeled, t_l, t_u, num_classes, options) -> torch.Tensor:
    """The teacher's zero-shot prediction."""
    return zeroshot_logits(store, t_u, unlabeled["video_id"]).softmax(-1)


@TEACHER_PSEUDO_LABELS.register(name="teacher_probe")
def teacher_probe(store, labeled, unlabeled, t_l, t_u, num_classes, options) -> torch.Tensor:
    """A linear probe (linear_probe) on the labeled videos' teacher features."""
    weight, bias = fit_linear_probe(t_l, torch.tensor(labeled["label"].to_numpy()), store["logit_scale"],
                                    num_classes, options["linear_probe"])
    return (t_u @ weight.T + bias).softmax(-1)


for _name, _source in TEACHER_PSEUDO_LABELS.items():
    PSEUDO_LABEL_SOURCES.register(_source, name=_name)
PSEUDO_LABEL_SOURCES.register(own_prediction, name="student")  # on the weak view


# ---------------------------------------------------------------- the weighted pseudo-label term

class PseudoLabelTerm:
    """What a method with a weighted pseudo-label term adds (a mixin before its StudentMethod
    base): its own section's `weight`, `unsup_warmup` (the ramp) and `threshold_mode` (one
    threshold, or FlexMatch's class-adaptive ones), read from config section `<name>`."""

    thresholds = None  # the THRESHOLD_MODES object, made by start

    @classmethod
    def reads(cls, config):
        return super().reads(config) + tuple(f"{cls.name}.{k}" for k in ("weight", "unsup_warmup", "threshold_mode"))

    def unsup_weight(self, step: int) -> float:
        section = self.options[self.name]
        return section["weight"] * unsup_ramp(step, section["unsup_warmup"])

    def threshold(self) -> float:
        return self.options[self.name]["threshold"]

    def start(self, student, n_unlabeled=0, num_classes=0, device=None):
        super().start(student, n_unlabeled, num_classes, device)
        mode = self.options[self.name]["threshold_mode"]
        if mode not in THRESHOLD_MODES:
            raise ValueError(f"{self.name}.threshold_mode: unknown threshold mode {mode!r}; choose from "
                             f"{', '.join(THRESHOLD_MODES)}")
        self.thresholds = THRESHOLD_MODES[mode](self.threshold(), n_unlabeled, num_classes, device)

    def state_dict(self):
        state = self.thresholds.state_dict() if self.thresholds is not None else {}
        return {"thresholds": state} if state else {}

    def load_state_dict(self, state):
        if "thresholds" in state:
            self.thresholds.load_state_dict(state["thresholds"])

    def pseudo_label_mask(self, probs: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(target, mask) of the unlabeled clips, as the section's threshold mode draws them."""
        if self.thresholds is None:  # called outside the trainer
            if self.options[self.name]["threshold_mode"] == "flexmatch":
                raise RuntimeError(f"{self.name}: threshold_mode flexmatch keeps a state per unlabeled video; "
                                   "call start() with the pool's size first (the trainer does)")
            return FixedThreshold(self.threshold()).mask(probs)
        return self.thresholds.mask(probs, batch.get("idx_u"))

    def pseudo_label_term(self, logits: torch.Tensor, probs: torch.Tensor, batch: dict):
        """(masked CE of `logits` towards the pseudo-labels of `probs`, its logs)."""
        target, mask = self.pseudo_label_mask(probs, batch)
        pl = masked_ce(logits, target, mask)
        return pl, {"pl": pl.detach().float(), "pl_mask": mask.mean().detach().float(),
                    "pseudo_labels": (target.detach(), mask.detach())}

    def ce_and_pseudo_labels(self, student, batch, step: int, views: tuple[str, ...], targets):
        """(loss, logs) of one forward pass over the labeled clips and the unlabeled `views` (batch
        keys): labeled CE plus the weighted masked CE of the last view towards the hard targets
        `targets(logits by view)`, thresholded as `<name>` says. Without unlabeled clips
        (fraction 1), the labeled CE alone."""
        if not has_unlabeled(batch):
            return labeled_ce(student, batch)
        n_l = batch["x_l"].shape[0]
        logits, _ = student(torch.cat([batch["x_l"], *(batch[v] for v in views)]))
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        by_view = dict(zip(views, logits[n_l:].chunk(len(views))))
        pl, logs = self.pseudo_label_term(by_view[views[-1]], targets(by_view), batch)
        return ce + self.unsup_weight(step) * pl, {**detached(ce=ce), **logs}


class TeacherPseudoLabels(PseudoLabelTerm):
    """The pseudo-labels' source as targets: section `<name>` names the source (`sources`) and
    its threshold; teacher_probe also reads the probe's settings (linear_probe). A teacher source
    makes the batches hold pl_u."""

    sources = PSEUDO_LABEL_SOURCES  # the registry its source is one of

    @classmethod
    def source_of(cls, config) -> str:
        return config[cls.name]["source"]

    @classmethod
    def needs_of(cls, config):
        source = cls.source_of(config)
        cls.sources[source]  # an unknown source is an error naming the key
        return super().needs_of(config) | ({"teacher_pseudo_labels"} if source in TEACHER_PSEUDO_LABELS else set())

    @classmethod
    def reads(cls, config):
        source = cls.source_of(config)
        cls.sources[source]
        threshold = f"{cls.name}.student_threshold" if source == "student" else f"{cls.name}.threshold"
        probe = ("linear_probe",) if source == "teacher_probe" else ()
        return super().reads(config) + (f"{cls.name}.source", threshold, *probe)

    def threshold(self) -> float:
        section = self.options[self.name]
        return section["student_threshold"] if self.source_of(self.options) == "student" else section["threshold"]

    def teacher_pseudo_labels(self, store, labeled, unlabeled, t_l, t_u, num_classes):
        return TEACHER_PSEUDO_LABELS[self.source_of(self.options)](store, labeled, unlabeled, t_l, t_u, num_classes,
                                                                   self.options)
