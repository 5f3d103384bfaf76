"""The method zoo: each algorithm is a small registered class that only defines its loss.

The shared trainer (svar/trainer.py) builds batches and steps the optimiser; a method receives
the student, a batch and the step and returns (loss, logs). A batch holds:

    x_l, y_l     labeled clips (uint8 [B, T, H, W, 3], weakly augmented) and their labels
    t_l          the teacher's video features of the labeled clips ([B, D], L2-normalised)
    x_u, t_u     unlabeled clips (weak view) and their teacher features   (`uses_unlabeled`)
    pl_u         the teacher's pseudo-label probabilities of the unlabeled clips ([B_u, C]): its
                 zero-shot prediction, or a linear probe fitted on the labeled teacher features
                 (a method's `source`: teacher_zeroshot, teacher_probe)
    x_u_strong   a strongly augmented view of the same frames as x_u     (`needs_strong_view`)
    tf_l, tf_u   the teacher's per-frame features ([B, k, D], L2-normalised) (`needs_frame_features`)
    zs_l, zs_u   the teacher's zero-shot logits of the clips ([B, C], logit scale included)
                 (`needs_teacher_logits`)
    idx_u        the unlabeled clips' positions in the unlabeled pool (class-adaptive thresholds
                 keep a state per unlabeled video)

The trainer only builds what a method asks for, so supervised training never pays for the
unlabeled pool, and only methods that need one pay for a strong view. With no unlabeled videos
(fraction 1) a batch has no unlabeled entries at all and every unlabeled term is left out: at
100% of labels `teacher_pl`, `pseudo_label` and `fixmatch` train exactly as `supervised`, and
`distill_pl` as `distill` (distillation on the labeled clips), so the 100% column compares the
same training, not a doubled cross-entropy.

Each method's options live in its own config section, named as the method (`fixmatch.threshold`,
`teacher_pl.source`); distillation's are `distill`'s (read by `distill` and `distill_pl`). Each
method declares the keys it reads (`reads`, given the config: which threshold `distill_pl` reads
depends on its source) and the trainer gets those and no others (`options_for`): the workflow
passes a training job exactly them, so a change to a key reruns exactly the runs of the methods
that read it. Evaluation's own keys (`evaluate_reads`) are declared the same way.

A method may keep a state across steps (mean_teacher's EMA teacher, FlexMatch's per-video
selections): the trainer calls `start` once before the first step and `after_step` after each
optimiser step, and saves `state_dict` in its resume checkpoint.

A method whose loss uses pseudo-labels returns them in its logs as `pseudo_labels`, (target
class, mask) of each unlabeled clip, detached: the trainer scores them against the unlabeled
videos' true labels for the diagnostics (svar.trainer), which the loss never sees.

Teacher-only baselines (`clip_zeroshot`, `clip_linear_probe`, `temporal_probe`) train no video
student: `fit_head` turns the teacher's stored features of the labeled videos into a classifier
(`teacher_head_logits` scores it). `clip_finetune` trains the teacher's own image encoder
(`build_model`).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
import torch.nn.functional as F

from .config import subset
from .ema import EMA
from .registry import Registry
from .student_weights import build_student, pretrained_keys

METHODS = Registry("method", "methods")
DISTILL_LOSSES = Registry("distillation loss", "distill.loss")
# where the teacher's pseudo-labels come from (teacher_pl.source), and distill_pl's sources: those,
# or the student's own prediction
TEACHER_PSEUDO_LABELS = Registry("teacher pseudo-label source", "teacher_pl.source")
PSEUDO_LABEL_SOURCES = Registry("pseudo-label source", "distill_pl.source")
for _name, _what in (("teacher_zeroshot", "the teacher's zero-shot prediction"),
                     ("teacher_probe", "a linear probe on the labeled videos' teacher features")):
    TEACHER_PSEUDO_LABELS.register(_what, name=_name)
    PSEUDO_LABEL_SOURCES.register(_what, name=_name)
PSEUDO_LABEL_SOURCES.register("the student's own prediction on the weak view", name="student")

# what every student run reads: the student (and its initial weights: pretrained_keys), and the
# trainer's settings but the unlabeled ratio
# what a run's clips read (with clip_keys), and its trainer (but the unlabeled ratio)
CLIP_KEYS = ("student.sampling", "student.frames", "student.size", "student.cache_size")
OPTIMISER_KEYS = ("train.lr", "train.weight_decay")
TRAINER_KEYS = ("train.steps", "train.batch_size", "train.optimizer", "train.schedule", "train.warmup_steps",
                "train.device", "train.crop", "train.flip", "train.val_every", "train.ema", "train.checkpoint_every")
STUDENT_KEYS = ("student.arch",) + CLIP_KEYS + OPTIMISER_KEYS + TRAINER_KEYS
# what building a strong view reads
STRONG_VIEW_KEYS = ("train.strong_area", "train.strong_cutout", "train.randaugment_ops", "train.randaugment_magnitude")


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


def masked_ce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hard pseudo-label cross-entropy towards `target` where `mask` is 1, averaged over all clips
    (masked ones count as zero, as USB's consistency_loss does)."""
    return (F.cross_entropy(logits, target, reduction="none") * mask).mean()


def fixed_mask(probs: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(target, mask): the argmax of `probs`, kept where its confidence reaches `threshold`."""
    conf, target = probs.max(dim=1)
    return target, (conf >= threshold).to(probs.dtype)


class FlexMatchThresholds:
    """Class-adaptive thresholds (FlexMatch, Zhang et al. 2021), as USB's FlexMatchThresholdingHook
    keeps them with thresh_warmup: every unlabeled video remembers the class it was last
    confidently (≥ tau) predicted as (-1: never); a class's learning effect is its number of such
    videos over the largest count of any class or of the never-selected; its threshold is
    tau · β/(2 − β) (the convex mapping). Early on every β is 0, so every pseudo-label counts; a
    class the predictions rarely reach keeps a low threshold. The state is updated after the
    batch's mask is drawn, as USB does, and is saved with the run's resume checkpoint."""

    def __init__(self, n_unlabeled: int, num_classes: int, tau: float, device=None):
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


THRESHOLD_MODES = Registry("threshold mode", "<method>.threshold_mode")
THRESHOLD_MODES.register("one confidence threshold for every class", name="fixed")
THRESHOLD_MODES.register("class-adaptive thresholds (FlexMatch: FlexMatchThresholds)", name="flexmatch")


def unsup_ramp(step: int, warmup: int) -> float:
    """The unlabeled term's weight factor at `step`: a linear ramp from 0 to 1 over `warmup`
    steps (USB's unsup_warm_up, there a fraction of the run), 1 throughout when warmup is 0."""
    return 1.0 if warmup <= 0 else min(1.0, step / warmup)


def has_unlabeled(batch: dict) -> bool:
    """Whether the batch holds unlabeled clips: not when every training video is labeled."""
    return "x_u" in batch


def _logs(**terms) -> dict:
    """Detached scalars: the trainer turns them into numbers only when it writes the curve, so a
    step never waits for the GPU to finish just to log."""
    return {k: v.detach().float() for k, v in terms.items()}


class Method:
    name = ""
    trains_student = True
    uses_unlabeled = False      # batch has x_u, t_u (and pl_u with a teacher source) when the split has unlabeled videos
    needs_strong_view = False   # batch has x_u_strong
    needs_frame_features = False  # batch has tf_l (and tf_u with uses_unlabeled)
    pseudo_label_source = None  # teacher_zeroshot / teacher_probe: batch has pl_u
    needs_teacher_logits = False  # batch has zs_l (and zs_u with uses_unlabeled)
    needs_teacher_weights = False  # its job reads the teacher's weights (the workflow adds them as an input)

    def __init__(self, options: dict):
        self.options = options

    def start(self, student, n_unlabeled: int = 0, num_classes: int = 0, device=None) -> None:
        """Before the first step: set up any state the method keeps across steps."""

    def after_step(self, student) -> None:
        """After each optimiser step."""

    def state_dict(self) -> dict:
        """The state it keeps across steps, for the run's resume checkpoint."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def train_settings(self, train: dict) -> dict:
        """The trainer's settings for this method: the config's `train` section (clip_finetune
        brings its own learning rate and weight decay)."""
        return train

    def build_model(self, options: dict, store: dict, num_classes: int):
        """The model it trains: the student (student.arch, initialised as student.pretrained)."""
        return build_student(options["student"], num_classes, store["text_embeddings"].shape[1])

    @classmethod
    def reads(cls, config: dict) -> tuple[str, ...]:
        """The config keys (whole sections, or section.key) this method's training reads."""
        return (STUDENT_KEYS + pretrained_keys(config) + clip_keys(config)
                + (("train.unlabeled_ratio",) if cls.uses_unlabeled else ())
                + (STRONG_VIEW_KEYS if cls.uses_strong_view(config) else ()))

    @classmethod
    def uses_strong_view(cls, config: dict) -> bool:
        """Whether training under `config` builds the strong view (and reads its settings)."""
        return cls.needs_strong_view

    @classmethod
    def evaluate_reads(cls) -> tuple[str, ...]:
        """The config keys scoring this method's model reads (rule evaluate)."""
        return ("evaluate",)

    def loss(self, student, batch, step: int = 0) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError


class UnlabeledTerm:
    """What a method with a weighted pseudo-label term adds: its own section's `weight`,
    `unsup_warmup` (the ramp) and `threshold_mode` (one threshold, or FlexMatch's class-adaptive
    ones), read from config section `<name>`."""

    thresholds = None  # FlexMatchThresholds under threshold_mode flexmatch, made by start

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
        if mode == "flexmatch":
            self.thresholds = FlexMatchThresholds(n_unlabeled, num_classes, self.threshold(), device)

    def state_dict(self):
        return {"thresholds": self.thresholds.state_dict()} if self.thresholds is not None else {}

    def load_state_dict(self, state):
        if self.thresholds is not None:
            self.thresholds.load_state_dict(state["thresholds"])

    def pseudo_label_mask(self, probs: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(target, mask) of the unlabeled clips: the fixed threshold, or FlexMatch's per class."""
        if self.options[self.name]["threshold_mode"] == "flexmatch":
            if self.thresholds is None:
                raise RuntimeError(f"{self.name}: threshold_mode flexmatch keeps a state per unlabeled video; "
                                   "call start() with the pool's size first (the trainer does)")
            return self.thresholds.mask(probs, batch["idx_u"])
        return fixed_mask(probs, self.threshold())

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
            return Supervised.loss(self, student, batch, step)
        n_l = batch["x_l"].shape[0]
        logits, _ = student(torch.cat([batch["x_l"], *(batch[v] for v in views)]))
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        by_view = dict(zip(views, logits[n_l:].chunk(len(views))))
        pl, logs = self.pseudo_label_term(by_view[views[-1]], targets(by_view), batch)
        return ce + self.unsup_weight(step) * pl, {**_logs(ce=ce), **logs}


def own_prediction(logits: torch.Tensor) -> torch.Tensor:
    """The student's own class probabilities, detached: targets it does not learn through."""
    return logits.detach().float().softmax(-1)


class TeacherPseudoLabels(UnlabeledTerm):
    """The teacher's pseudo-labels as targets: section `<name>` names the source and its
    threshold; teacher_probe also reads the probe's settings (linear_probe)."""

    @classmethod
    def source_of(cls, config) -> str:
        return config[cls.name]["source"]

    sources = PSEUDO_LABEL_SOURCES  # the registry its source is one of

    @classmethod
    def reads(cls, config):
        source = cls.source_of(config)
        cls.sources[source]  # an unknown source is an error naming the key
        threshold = f"{cls.name}.student_threshold" if source == "student" else f"{cls.name}.threshold"
        probe = ("linear_probe",) if source == "teacher_probe" else ()
        return super().reads(config) + (f"{cls.name}.source", threshold, *probe)

    def __init__(self, options):
        super().__init__(options)
        source = self.source_of(options)
        self.sources[source]
        if source != "student":
            self.pseudo_label_source = source

    def threshold(self) -> float:
        section = self.options[self.name]
        return section["student_threshold"] if self.source_of(self.options) == "student" else section["threshold"]


@METHODS.register
class Supervised(Method):
    """Cross-entropy on the labeled clips only: the floor every SSL method must beat."""

    name = "supervised"

    def loss(self, student, batch, step=0):
        logits, _ = student(batch["x_l"])
        ce = F.cross_entropy(logits, batch["y_l"])
        return ce, _logs(ce=ce)


def pool_frames(x: torch.Tensor, length: int) -> torch.Tensor:
    """[B, k, D] averaged over time into `length` equal segments: [B, length, D]."""
    return x if x.shape[1] == length else F.adaptive_avg_pool1d(x.transpose(1, 2), length).transpose(1, 2)


def frame_distill_loss(student, temporal: torch.Tensor, frames: torch.Tensor, kind: str) -> torch.Tensor:
    """Student temporal features [B, T', E] against the teacher's frame features [B, k, D], at
    the coarser of the two resolutions: the teacher's k frames averaged into the student's T'
    temporal positions (and renormalised), or the student's positions averaged into k when it
    has more. A student with one temporal position has nothing to align in time: refused."""
    t_student, k = temporal.shape[1], frames.shape[1]
    if t_student < 2:
        raise ValueError(f"distill.frame_level: student.arch {getattr(student, 'arch', '?')} keeps {t_student} "
                         "temporal position of its clip after its temporal strides; frame-level distillation needs "
                         "at least 2: raise student.frames or set distill.frame_level: false")
    length = min(t_student, k)
    target = F.normalize(pool_frames(frames.float(), length), dim=-1)
    return distill_loss(student.project(pool_frames(temporal, length)), target, kind)


def temporal_positions(arch: str, frames: int, size: int) -> int:
    """T': the temporal positions a student's last feature map keeps of a clip of `frames`."""
    from .students import Student

    student = Student(arch, 2, 2).eval()
    with torch.no_grad():
        return student.forward_temporal(torch.zeros((1, frames, size, size, 3), dtype=torch.uint8))[2].shape[1]


def frame_level_problems(config: dict) -> list[str]:
    """Frame-level distillation asked of a student whose feature map keeps under 2 temporal
    positions (tiny3d of 4 frames): named before any job runs, as the training job would fail."""
    distilling = [m for m in config["methods"] if m in METHODS and issubclass(METHODS[m], Distill)]
    if not (config["distill"]["frame_level"] and distilling):
        return []
    student = config["student"]
    t = temporal_positions(student["arch"], student["frames"], student["size"])
    if t >= 2:
        return []
    return [f"distill.frame_level: student.arch {student['arch']} keeps {t} temporal position of a "
            f"{student['frames']}-frame clip (student.frames), and frame-level distillation ({', '.join(distilling)}) "
            "needs at least 2: raise student.frames (tiny3d: 8) or set distill.frame_level: false"]


@METHODS.register
class Distill(Method):
    """Supervised CE plus feature distillation on labeled and unlabeled clips.

    The student's embedding, through a linear projection, is pulled towards the frozen
    teacher's video feature (the mean of its frame features). With `distill.frame_level`, the
    student's last feature map pooled over space only (its temporal features) is pulled towards
    the teacher's frame features at the coarser of the two temporal resolutions
    (`frame_distill_loss`).
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

    def distilled_view(self, batch):
        """The unlabeled clips the student is distilled on."""
        return batch["x_u"]

    def forward(self, student, x):
        """(logits, what is distilled): the embedding, or the temporal features when frame_level."""
        if self.frame_level:
            logits, _, temporal = student.forward_temporal(x)
            return logits, temporal
        logits, emb = student(x)
        return logits, emb

    def distillation(self, student, out, batch, n_distilled: int) -> torch.Tensor:
        """The distillation term on the first `n_distilled` rows of `out` (labeled, then unlabeled)."""
        kind = self.options["distill"]["loss"]
        unlabeled = n_distilled > batch["x_l"].shape[0]
        key = "tf" if self.frame_level else "t"
        target = torch.cat([batch[f"{key}_l"], batch[f"{key}_u"]]) if unlabeled else batch[f"{key}_l"]
        if self.frame_level:
            return frame_distill_loss(student, out[:n_distilled], target, kind)
        return distill_loss(student.project(out[:n_distilled]), target, kind)

    def loss(self, student, batch, step=0):
        n_l = batch["x_l"].shape[0]
        x = torch.cat([batch["x_l"], self.distilled_view(batch)]) if has_unlabeled(batch) else batch["x_l"]
        logits, out = self.forward(student, x)
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        kd = self.distillation(student, out, batch, len(x))
        return ce + self.options["distill"]["weight"] * kd, _logs(ce=ce, distill=kd)


@METHODS.register
class DistillPL(TeacherPseudoLabels, Distill):
    """Çelik, Küçükmanisa & Urhan (2023): feature distillation plus pseudo-labels.

    Labeled CE and feature distillation (`distill`) on labeled and unlabeled clips, plus a
    cross-entropy term on the unlabeled clips whose pseudo-label confidence reaches the
    threshold, towards the predicted class. The paper's abstract leaves the source of the
    pseudo-labels open, so `distill_pl.source` chooses: `teacher_zeroshot` (the CLIP teacher's
    zero-shot prediction, default), `teacher_probe` (a linear probe on the teacher's features
    fitted to the labeled videos), both thresholded at `distill_pl.threshold`; or `student`
    (FixMatch-style: the student's prediction on the weak view, from the same forward pass, is
    the hard target for the strong view, which is also the view distilled; threshold
    `distill_pl.student_threshold`).
    """

    name = "distill_pl"

    def __init__(self, options):
        super().__init__(options)
        self.needs_strong_view = self.uses_strong_view(options)

    @classmethod
    def uses_strong_view(cls, config: dict) -> bool:
        return cls.source_of(config) == "student"

    def distilled_view(self, batch):
        return batch["x_u_strong"] if self.needs_strong_view else batch["x_u"]

    def loss(self, student, batch, step=0):
        if not has_unlabeled(batch):
            return Distill.loss(self, student, batch, step)
        n_l, n_u = batch["x_l"].shape[0], batch["x_u"].shape[0]
        views = [batch["x_l"], self.distilled_view(batch)]
        if self.needs_strong_view:  # the weak view joins the forward pass only to make the targets
            views.append(batch["x_u"])
        logits, out = self.forward(student, torch.cat(views))
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        kd = self.distillation(student, out, batch, n_l + n_u)
        probs = own_prediction(logits[n_l + n_u:]) if self.needs_strong_view else batch["pl_u"]
        pl, logs = self.pseudo_label_term(logits[n_l:n_l + n_u], probs, batch)
        loss = ce + self.options["distill"]["weight"] * kd + self.unsup_weight(step) * pl
        return loss, {**_logs(ce=ce, distill=kd), **logs}


@METHODS.register
class TeacherPL(TeacherPseudoLabels, Method):
    """The teacher's pseudo-labels without distillation: labeled CE plus CE on the unlabeled
    clips towards the teacher's hard pseudo-label where its confidence reaches
    `teacher_pl.threshold`; the labels are the teacher's zero-shot prediction or a linear probe
    on its features of the labeled videos (`teacher_pl.source`). What distill_pl is without its
    distillation term."""

    name = "teacher_pl"
    uses_unlabeled = True
    sources = TEACHER_PSEUDO_LABELS  # the student's own pseudo-labels are method pseudo_label

    def loss(self, student, batch, step=0):
        return self.ce_and_pseudo_labels(student, batch, step, ("x_u",), lambda view: batch["pl_u"])


@METHODS.register
class PseudoLabel(UnlabeledTerm, Method):
    """Pseudo-labelling (Lee 2013), as USB's `pseudolabel` runs it: labeled CE plus CE on the
    unlabeled clips towards the student's own hard prediction on them (detached), where its
    confidence reaches `pseudo_label.threshold` (USB's p_cutoff, 0.95), its weight ramped up
    over `pseudo_label.unsup_warmup` steps. Self-training: no teacher is used. One forward pass
    over labeled and unlabeled clips (USB freezes batch-norm statistics for the unlabeled half;
    here they see both)."""

    name = "pseudo_label"
    uses_unlabeled = True

    @classmethod
    def reads(cls, config):
        return super().reads(config) + ("pseudo_label.threshold",)

    def loss(self, student, batch, step=0):
        return self.ce_and_pseudo_labels(student, batch, step, ("x_u",), lambda view: own_prediction(view["x_u"]))


@METHODS.register
class FixMatch(UnlabeledTerm, Method):
    """FixMatch (Sohn et al. 2020) as USB defines it (semilearn/algorithms/fixmatch/fixmatch.py,
    FixMatch.train_step with use_cat): one forward pass over the labeled clips, the weak views
    and the strong views of the unlabeled clips together (so batch-norm statistics are updated
    once, by all of them); the weak views' detached softmax gives hard pseudo-labels, kept where
    their confidence reaches tau (`fixmatch.threshold`, USB's p_cutoff); the unlabeled loss is
    the masked cross-entropy of the strong views averaged over all mu·B unlabeled clips, weighted
    by lambda_u (`fixmatch.weight`). No teacher is used.
    """

    name = "fixmatch"
    uses_unlabeled = True
    needs_strong_view = True

    @classmethod
    def reads(cls, config):
        return super().reads(config) + ("fixmatch.threshold",)

    def loss(self, student, batch, step=0):
        # the weak views make the targets of the strong ones
        return self.ce_and_pseudo_labels(student, batch, step, ("x_u", "x_u_strong"),
                                         lambda view: own_prediction(view["x_u"]))


@METHODS.register
class DistillKD(Method):
    """Knowledge distillation on the teacher's soft labels (Hinton et al. 2015; VideoSSL, Jing et
    al. 2021, distils an image classifier's class probabilities into a video student the same
    way): labeled CE plus `distill_kd.weight` × T² · KL(teacher ‖ student), both softened by the
    temperature T (`distill_kd.temperature`), on the labeled and the unlabeled clips. The
    teacher's distribution is its zero-shot prediction (its logits against the class prompts,
    logit scale included). What the teacher's hard pseudo-labels (teacher_pl) are with neither a
    threshold nor an argmax."""

    name = "distill_kd"
    uses_unlabeled = True
    needs_teacher_logits = True

    @classmethod
    def reads(cls, config):
        return super().reads(config) + ("distill_kd",)

    def loss(self, student, batch, step=0):
        n_l = batch["x_l"].shape[0]
        unlabeled = has_unlabeled(batch)
        x = torch.cat([batch["x_l"], batch["x_u"]]) if unlabeled else batch["x_l"]
        teacher = torch.cat([batch["zs_l"], batch["zs_u"]]) if unlabeled else batch["zs_l"]
        logits, _ = student(x)
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        t = self.options[self.name]["temperature"]
        kd = F.kl_div(F.log_softmax(logits.float() / t, -1), F.log_softmax(teacher.float() / t, -1),
                      reduction="batchmean", log_target=True) * t * t
        logs = _logs(ce=ce, kd=kd)
        if unlabeled:  # the teacher's argmax is what the unlabeled clips are pulled towards most
            logs |= every_clip(batch["zs_u"].argmax(1))
        return ce + self.options[self.name]["weight"] * kd, logs


def every_clip(target: torch.Tensor) -> dict:
    """The pseudo-label logs of a method whose soft targets reach every unlabeled clip: their
    argmax as the pseudo-label, none masked."""
    mask = torch.ones_like(target, dtype=torch.float)
    return {"pl_mask": mask.mean(), "pseudo_labels": (target.detach(), mask)}


def sigmoid_ramp(step: int, length: int) -> float:
    """exp(−5 (1 − t)²), t = step/length clipped to 1 (Laine & Aila 2017; Mean Teacher's
    consistency ramp-up); 1 throughout when length is 0."""
    if length <= 0:
        return 1.0
    t = min(1.0, max(0.0, step / length))
    return math.exp(-5.0 * (1.0 - t) ** 2)


@METHODS.register
class MeanTeacher(Method):
    """Mean Teacher (Tarvainen & Valpola 2017; SVFormer builds its video SSL on it): labeled CE
    plus a consistency term, the mean squared error between the class probabilities of the
    student on the strong view of each unlabeled clip and of its teacher on the weak view. The
    teacher is the exponential moving average of the student's weights (decay
    `mean_teacher.ema_decay`), updated after every step and never trained; the consistency
    weight `mean_teacher.weight` ramps up by Mean Teacher's sigmoid over
    `mean_teacher.unsup_warmup` steps (sigmoid_ramp). No CLIP teacher is used."""

    name = "mean_teacher"
    uses_unlabeled = True
    needs_strong_view = True

    @classmethod
    def reads(cls, config):
        return super().reads(config) + ("mean_teacher",)

    def __init__(self, options):
        super().__init__(options)
        self.teacher_model, self.ema = None, None

    def start(self, student, n_unlabeled=0, num_classes=0, device=None):
        decay = float(self.options[self.name]["ema_decay"])
        if not 0 <= decay < 1:
            raise ValueError(f"mean_teacher.ema_decay: must be in [0, 1), got {decay}")
        self.teacher_model = copy.deepcopy(student).requires_grad_(False)
        self.ema = EMA(self.teacher_model, decay)
        self.ema.state = self.teacher_model.state_dict()  # the average lives in the teacher's own tensors

    def after_step(self, student):
        self.ema.update(student)

    def state_dict(self):
        return {"ema": self.ema.state_dict()} if self.ema is not None else {}

    def load_state_dict(self, state):
        self.ema.load_state_dict(state["ema"])

    def loss(self, student, batch, step=0):
        if not has_unlabeled(batch):
            return Supervised.loss(self, student, batch, step)
        if self.teacher_model is None:  # called outside the trainer: the teacher starts as the student
            self.start(student)
        n_l = batch["x_l"].shape[0]
        logits, _ = student(torch.cat([batch["x_l"], batch["x_u_strong"]]))
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        with torch.no_grad():
            self.teacher_model.train(student.training)
            teacher = self.teacher_model(batch["x_u"])[0].float().softmax(-1)
        consistency = F.mse_loss(logits[n_l:].float().softmax(-1), teacher)
        section = self.options[self.name]
        weight = section["weight"] * sigmoid_ramp(step, section["unsup_warmup"])
        return ce + weight * consistency, {**_logs(ce=ce, consistency=consistency), **every_clip(teacher.argmax(1))}


@METHODS.register
class ClipFinetune(Method):
    """Few-shot fine-tuning of the teacher's image encoder on the labeled videos only, ViFi-CLIP's
    recipe reduced to its vision side (Rasheed et al. 2023, which fine-tunes both encoders): each
    frame of a clip through the CLIP image encoder, the frame features averaged over time and
    L2-normalised, a linear classifier initialised from the class-name prompt embeddings times
    the logit scale (so step 0 is the zero-shot classifier, svar.clip_classifier), all of it
    trained with cross-entropy at a small learning rate (`clip_finetune.lr`, weight decay
    `clip_finetune.weight_decay`); the trainer's other settings are `train`'s. It sees the
    student's clips (student.frames at student.size, resized to the encoder's input). No
    unlabeled video is used."""

    name = "clip_finetune"
    needs_teacher_weights = True

    @classmethod
    def reads(cls, config):
        # not the student's architecture, initialisation or optimiser settings: its own
        return (CLIP_KEYS + TRAINER_KEYS + clip_keys(config) + ("clip_finetune", "teacher.cache_dir", "teacher.offline"))

    def train_settings(self, train):
        section = self.options[self.name]
        return {**train, "lr": section["lr"], "weight_decay": section["weight_decay"]}

    def build_model(self, options, store, num_classes):
        from .clip_classifier import clip_classifier

        return clip_classifier(store, options["teacher"]["cache_dir"], options["teacher"]["offline"])

    def loss(self, student, batch, step=0):
        return Supervised.loss(self, student, batch, step)


class TeacherBaseline(Method):
    """A classifier on the teacher's stored features of the labeled videos: no clip is decoded,
    no video student trained. `fit` a linear head on the video features (clip_zeroshot,
    clip_linear_probe), or override `fit_head` (temporal_probe)."""

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

    def fit_head(self, store: dict, labeled, num_classes: int, seed: int) -> tuple[dict, list[dict]]:
        """(the checkpoint's head: `kind` and what teacher_head_logits needs, the training curve's
        rows) of a head fitted on the labeled videos (`labeled`: split rows) of `store`."""
        from .teacher.store import video_features

        weight, bias = self.fit(video_features(store, labeled["video_id"]), torch.tensor(labeled["label"].to_numpy()),
                                store["text_embeddings"], store["logit_scale"], num_classes)
        return {"kind": "teacher_head", "weight": weight, "bias": bias}, []


def teacher_head_logits(ckpt: dict, store: dict, video_ids) -> torch.Tensor:
    """A teacher-only baseline's logits of videos, from their stored teacher features."""
    from .teacher.store import frame_features, video_features

    if ckpt["kind"] == "teacher_head":
        return video_features(store, video_ids) @ ckpt["weight"].T + ckpt["bias"]
    if ckpt["kind"] == "teacher_temporal":
        head = TemporalHead(**ckpt["config"])
        head.load_state_dict(ckpt["state_dict"])
        with torch.no_grad():
            return head.eval()(frame_features(store, video_ids))
    raise ValueError(f"not a teacher-only head: checkpoint kind {ckpt['kind']!r}")


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


@METHODS.register
class TemporalProbe(TeacherBaseline):
    """A temporal model on the teacher's own frame features (TemporalHead), trained with
    cross-entropy on the labeled videos only (AdamW, `temporal_probe.steps` steps of
    `temporal_probe.batch_size` videos, seeded). Against clip_linear_probe it says what modelling
    time on top of the frozen image teacher buys; against the students, whether a 3D student is
    needed at all."""

    name = "temporal_probe"

    @classmethod
    def reads(cls, config):
        return ("temporal_probe",)

    def fit_head(self, store, labeled, num_classes, seed):
        from .teacher.store import frame_features

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
        return {"kind": "teacher_temporal", "config": config, "state_dict": head.state_dict()}, curve


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
