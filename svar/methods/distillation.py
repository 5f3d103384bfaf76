"""Feature distillation from the frozen teacher (Çelik, Küçükmanisa & Urhan 2023): `distill`,
and `distill_pl`, the paper's method, distillation plus pseudo-labels. Their options are
`distill`'s section (read by both)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import Registry
from .base import METHODS, StudentMethod, detached, has_unlabeled
from .terms import TeacherPseudoLabels, own_prediction

DISTILL_LOSSES = Registry("distillation loss", "distill.loss")


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
    from ..students import Student

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
class Distill(StudentMethod):
    """Supervised CE plus feature distillation on labeled and unlabeled clips.

    The student's embedding, through a linear projection, is pulled towards the frozen
    teacher's video feature (the mean of its frame features). With `distill.frame_level`, the
    student's last feature map pooled over space only (its temporal features) is pulled towards
    the teacher's frame features at the coarser of the two temporal resolutions
    (`frame_distill_loss`).
    """

    name = "distill"
    needs = frozenset({"unlabeled"})

    @classmethod
    def needs_of(cls, config):
        return super().needs_of(config) | ({"frame_features"} if config["distill"]["frame_level"] else set())

    @classmethod
    def reads(cls, config):
        return super().reads(config) + ("distill",)

    def __init__(self, options):
        super().__init__(options)
        self.frame_level = bool(options["distill"]["frame_level"])

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
        return ce + self.options["distill"]["weight"] * kd, detached(ce=ce, distill=kd)


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

    @classmethod
    def needs_of(cls, config):
        return super().needs_of(config) | ({"strong_view"} if cls.source_of(config) == "student" else set())

    def distilled_view(self, batch):
        return batch["x_u_strong"] if "strong_view" in self.needs else batch["x_u"]

    def loss(self, student, batch, step=0):
        if not has_unlabeled(batch):
            return super().loss(student, batch, step)
        n_l, n_u = batch["x_l"].shape[0], batch["x_u"].shape[0]
        views = [batch["x_l"], self.distilled_view(batch)]
        if "strong_view" in self.needs:  # the weak view joins the forward pass only to make the targets
            views.append(batch["x_u"])
        logits, out = self.forward(student, torch.cat(views))
        ce = F.cross_entropy(logits[:n_l], batch["y_l"])
        kd = self.distillation(student, out, batch, n_l + n_u)
        probs = own_prediction(logits[n_l + n_u:]) if "strong_view" in self.needs else batch["pl_u"]
        pl, logs = self.pseudo_label_term(logits[n_l:n_l + n_u], probs, batch)
        loss = ce + self.options["distill"]["weight"] * kd + self.unsup_weight(step) * pl
        return loss, {**detached(ce=ce, distill=kd), **logs}
