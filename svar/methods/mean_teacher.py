"""Mean Teacher: consistency with an exponential moving average of the student."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ..ema import EMA
from .base import METHODS, StudentMethod, detached, has_unlabeled, labeled_ce
from .terms import every_clip, sigmoid_ramp


@METHODS.register
class MeanTeacher(StudentMethod):
    """Mean Teacher (Tarvainen & Valpola 2017; SVFormer builds its video SSL on it): labeled CE
    plus a consistency term, the mean squared error between the class probabilities of the
    student on the strong view of each unlabeled clip and of its teacher on the weak view. The
    teacher is the exponential moving average of the student's weights (decay
    `mean_teacher.ema_decay`), updated after every step and never trained; the consistency
    weight `mean_teacher.weight` ramps up by Mean Teacher's sigmoid over
    `mean_teacher.unsup_warmup` steps (sigmoid_ramp). No CLIP teacher is used."""

    name = "mean_teacher"
    needs = frozenset({"unlabeled", "strong_view"})

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
            return labeled_ce(student, batch)
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
        return ce + weight * consistency, {**detached(ce=ce, consistency=consistency), **every_clip(teacher.argmax(1))}
