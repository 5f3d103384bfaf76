"""One shared trainer for every method: batches, optimiser, schedule, logging, checkpoint.

A method (svar/methods.py) only defines its loss. All randomness after model initialisation
(batch sampling, temporal offsets, augmentation) comes from one seeded torch.Generator, so the
same config and seed give the same weights on CPU.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import random

import numpy as np
import torch
from tqdm import tqdm

from .atomic import torch_save, write_text
from .clips import augment, decode_clips, sample_frames
from .methods import get_method
from .students import Student
from .teacher import autocast, resolve_device, video_features, zeroshot_logits

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(params, opts: dict):
    if opts["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=opts["lr"], weight_decay=opts["weight_decay"])
    if opts["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=opts["lr"], momentum=0.9, nesterov=True,
                               weight_decay=opts["weight_decay"])
    raise ValueError(f"train.optimizer: unknown optimizer {opts['optimizer']!r}; choose adamw or sgd")


class EpochSampler:
    """Indices in shuffled passes over a pool, drawn from the shared generator."""

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator, self.order, self.pos = n, generator, torch.empty(0, dtype=torch.long), 0

    def take(self, k: int) -> torch.Tensor:
        out = []
        while k > 0:
            if self.pos >= len(self.order):
                self.order, self.pos = torch.randperm(self.n, generator=self.generator), 0
            chunk = self.order[self.pos:self.pos + k]
            self.pos += len(chunk)
            k -= len(chunk)
            out.append(chunk)
        return torch.cat(out)


def train(manifest, split, store, method_name: str, options: dict, out, seed: int, run_info: dict,
          threads: int = 1, curve_out=None) -> dict:
    """Train (or fit) one run; write its checkpoint to `out`, its training curve to `curve_out`."""
    curve_out = curve_out or f"{out}.curve.csv"
    torch.set_num_threads(threads)
    seed_everything(seed)
    method = get_method(method_name, options)
    labeled = split[split["role"] == "labeled"]
    unlabeled = split[split["role"] == "unlabeled"]
    num_classes = len(store["class_names"])
    meta = {**run_info, "method": method_name, "seed": seed, "options": options,
            "n_labeled": len(labeled), "n_unlabeled": len(unlabeled), "teacher": store["meta"]}

    if not method.trains_student:
        weight, bias = method.fit(video_features(store, labeled["video_id"]),
                                  torch.tensor(labeled["label"].to_numpy()),
                                  store["text_embeddings"], store["logit_scale"], num_classes)
        ckpt = {"kind": "teacher_head", "weight": weight, "bias": bias, "meta": meta}
        torch_save(out, ckpt)
        write_text(curve_out, "step,loss\n")  # nothing is trained step by step
        return ckpt

    s_opts, t_opts = options["student"], options["train"]
    device = resolve_device(t_opts["device"])
    by_id = manifest.set_index("video_id")
    # with every training video labeled (fraction 1) the unlabeled terms use the labeled pool
    pool_u = unlabeled if len(unlabeled) else labeled
    cache_l = decode_clips(by_id.loc[labeled["video_id"]], s_opts["cache_frames"], s_opts["size"], threads,
                           desc="decode labeled")
    y_l = torch.tensor(labeled["label"].to_numpy())
    t_l = video_features(store, labeled["video_id"])
    if method.uses_unlabeled:
        cache_u = decode_clips(by_id.loc[pool_u["video_id"]], s_opts["cache_frames"], s_opts["size"], threads,
                               desc="decode unlabeled")
        t_u = video_features(store, pool_u["video_id"])
        if len(unlabeled):
            pl_u = zeroshot_logits(store, pool_u["video_id"]).softmax(-1)
        else:  # the pool is the labeled set: its true labels are the targets, not the teacher's guess
            pl_u = torch.nn.functional.one_hot(torch.tensor(pool_u["label"].to_numpy()), num_classes).float()

    student = Student(s_opts["arch"], num_classes, store["text_embeddings"].shape[1]).to(device)
    optimizer = make_optimizer(student.parameters(), t_opts)
    generator = torch.Generator().manual_seed(seed)
    sampler_l = EpochSampler(len(labeled), generator)
    sampler_u = EpochSampler(len(pool_u), generator)
    b_l, b_u = t_opts["batch_size"], t_opts["batch_size"] * t_opts["unlabeled_ratio"]
    steps, warmup = t_opts["steps"], t_opts["warmup_steps"]

    def view(cache, idx):
        clips = augment(sample_frames(cache[idx], s_opts["frames"], generator), generator, flip=t_opts["flip"])
        return clips.to(device, non_blocking=True)

    curve = []
    student.train()
    for step in tqdm(range(steps), desc=f"train {method_name}", unit="step"):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, warmup, t_opts["lr"])
        idx_l = sampler_l.take(b_l)
        batch = {"x_l": view(cache_l, idx_l), "y_l": y_l[idx_l].to(device), "t_l": t_l[idx_l].to(device)}
        if method.uses_unlabeled:
            idx_u = sampler_u.take(b_u)
            batch.update(x_u=view(cache_u, idx_u), t_u=t_u[idx_u].to(device), pl_u=pl_u[idx_u].to(device))
        with autocast(device):
            loss, logs = method.loss(student, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{method_name}: loss became {loss.item()} at step {step}; lower train.lr")
        curve.append({"step": step, "lr": optimizer.param_groups[0]["lr"], "loss": loss.item(), **logs})

    ckpt = {"kind": "student", "arch": s_opts["arch"], "num_classes": num_classes,
            "teacher_dim": store["text_embeddings"].shape[1], "state_dict": student.state_dict(),
            "meta": meta}
    torch_save(out, ckpt)
    write_text(curve_out, _curve_csv(curve))
    log.info("%s: final loss %.4f after %d steps", method_name, curve[-1]["loss"], steps)
    return ckpt


def _curve_csv(curve: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in curve for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(curve)
    return buf.getvalue()
