"""Methods whose unlabeled term is a cross-entropy towards hard pseudo-labels: the teacher's
(teacher_pl), the student's own (pseudo_label), the student's weak view's for its strong view
(fixmatch)."""

from __future__ import annotations

from .base import METHODS, StudentMethod
from .terms import PseudoLabelTerm, TEACHER_PSEUDO_LABELS, TeacherPseudoLabels, own_prediction


@METHODS.register
class TeacherPL(TeacherPseudoLabels, StudentMethod):
    """The teacher's pseudo-labels without distillation: labeled CE plus CE on the unlabeled
    clips towards the teacher's hard pseudo-label where its confidence reaches
    `teacher_pl.threshold`; the labels are the teacher's zero-shot prediction or a linear probe
    on its features of the labeled videos (`teacher_pl.source`). What distill_pl is without its
    distillation term."""

    name = "teacher_pl"
    needs = frozenset({"unlabeled"})
    sources = TEACHER_PSEUDO_LABELS  # the student's own pseudo-labels are method pseudo_label

    def loss(self, student, batch, step=0):
        return self.ce_and_pseudo_labels(student, batch, step, ("x_u",), lambda view: batch["pl_u"])


@METHODS.register
class PseudoLabel(PseudoLabelTerm, StudentMethod):
    """Pseudo-labelling (Lee 2013), as USB's `pseudolabel` runs it: labeled CE plus CE on the
    unlabeled clips towards the student's own hard prediction on them (detached), where its
    confidence reaches `pseudo_label.threshold` (USB's p_cutoff, 0.95), its weight ramped up
    over `pseudo_label.unsup_warmup` steps. Self-training: no teacher is used. One forward pass
    over labeled and unlabeled clips (USB freezes batch-norm statistics for the unlabeled half;
    here they see both)."""

    name = "pseudo_label"
    needs = frozenset({"unlabeled"})

    @classmethod
    def reads(cls, config):
        return super().reads(config) + ("pseudo_label.threshold",)

    def loss(self, student, batch, step=0):
        return self.ce_and_pseudo_labels(student, batch, step, ("x_u",), lambda view: own_prediction(view["x_u"]))


@METHODS.register
class FixMatch(PseudoLabelTerm, StudentMethod):
    """FixMatch (Sohn et al. 2020) as USB defines it (semilearn/algorithms/fixmatch/fixmatch.py,
    FixMatch.train_step with use_cat): one forward pass over the labeled clips, the weak views
    and the strong views of the unlabeled clips together (so batch-norm statistics are updated
    once, by all of them); the weak views' detached softmax gives hard pseudo-labels, kept where
    their confidence reaches tau (`fixmatch.threshold`, USB's p_cutoff); the unlabeled loss is
    the masked cross-entropy of the strong views averaged over all mu·B unlabeled clips, weighted
    by lambda_u (`fixmatch.weight`). No teacher is used.
    """

    name = "fixmatch"
    needs = frozenset({"unlabeled", "strong_view"})

    @classmethod
    def reads(cls, config):
        return super().reads(config) + ("fixmatch.threshold",)

    def loss(self, student, batch, step=0):
        # the weak views make the targets of the strong ones
        return self.ce_and_pseudo_labels(student, batch, step, ("x_u", "x_u_strong"),
                                         lambda view: own_prediction(view["x_u"]))
