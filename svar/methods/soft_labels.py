"""Knowledge distillation on the teacher's soft labels: its zero-shot class distribution."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import METHODS, StudentMethod, detached, has_unlabeled
from .terms import every_clip


@METHODS.register
class DistillKD(StudentMethod):
    """Knowledge distillation on the teacher's soft labels (Hinton et al. 2015; VideoSSL, Jing et
    al. 2021, distils an image classifier's class probabilities into a video student the same
    way): labeled CE plus `distill_kd.weight` × T² · KL(teacher ‖ student), both softened by the
    temperature T (`distill_kd.temperature`), on the labeled and the unlabeled clips. The
    teacher's distribution is its zero-shot prediction (its logits against the class prompts,
    logit scale included). What the teacher's hard pseudo-labels (teacher_pl) are with neither a
    threshold nor an argmax."""

    name = "distill_kd"
    needs = frozenset({"unlabeled", "teacher_logits"})

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
        logs = detached(ce=ce, kd=kd)
        if unlabeled:  # the teacher's argmax is what the unlabeled clips are pulled towards most
            logs |= every_clip(batch["zs_u"].argmax(1))
        return ce + self.options[self.name]["weight"] * kd, logs
