"""One shared trainer for every method: batches, optimiser, schedule, EMA, logging, checkpoints.

A method (svar.methods) only defines its loss; the trainer builds the batch it asks for
(labeled clips always; what the method `needs` of the rest, from one table: BATCH_FIELDS). All randomness after model initialisation (batch sampling, temporal
offsets, augmentation) comes from one seeded CPU torch.Generator, so the same config and seed
give the same weights on CPU, and a run resumed from its `<out>.resume.pt` checkpoint ends with
exactly the weights of an uninterrupted one.

The options are the part of the config a run reads (`options_for`): what every run reads (its
clips, the trainer's settings, the student and its initialisation: `training_reads`) and the
method's own keys (its `reads`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import math
import random
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .atomic import torch_save, write_text
from .batches import STRONG_VIEW_KEYS, Batches, prefetch_pays
from .clips.store import ClipStore, memory_train_store
from .clips.views import eval_views, to_device
from .device import autocast, job_device
from .ema import EMA
from .config import subset
from .methods import METHODS, get_method
from .readers import CorruptFileError, load_torch
from .student_weights import pretrained_keys
from .students import Student, channels_last_3d
from .teacher.store import PER_VIDEO_KEYS, frame_features, video_features, zeroshot_logits
from .pseudo_label_diagnostics import PseudoLabelDiagnostics, csv_text, diagnostics_rows
from .read_tracking import plain

log = logging.getLogger(__name__)

# the curve's numbers are fetched from the device this often (a sync on CUDA), and checked finite
LOG_EVERY = 25

# the optimiser's settings (a method may bring its own: clip_finetune), and the trainer's own
OPTIMISER_KEYS = ("train.lr", "train.weight_decay")
TRAINER_KEYS = ("train.steps", "train.batch_size", "train.optimizer", "train.schedule", "train.warmup_steps",
                "train.device", "train.crop", "train.flip", "train.val_every", "train.ema", "train.checkpoint_every")


def training_reads(name: str, config: dict) -> tuple[str, ...]:
    """The config keys (whole sections, or section.key) a run of method `name` reads: the
    trainer's settings, the video student and its initialisation (unless the method trains
    another model), the unlabeled ratio and the strong view's settings where its batches hold
    them, and the method's own keys and its clips' (`clip_reads`). A teacher-feature head reads
    its own keys only."""
    cls = METHODS[name]
    if not cls.trains_student:
        return cls.reads(config)
    student, needs = cls.trains_video_student, cls.needs_of(config)
    return ((("student.arch",) if student else ()) + (OPTIMISER_KEYS if student else ()) + TRAINER_KEYS
            + (pretrained_keys(config) if student else ()) + cls.clip_reads(config)
            + (("train.unlabeled_ratio",) if "unlabeled" in needs else ())
            + (STRONG_VIEW_KEYS if "strong_view" in needs else ()) + cls.reads(config))


def options_for(name: str, config: dict) -> dict:
    """The part of a config that method `name`'s training reads: what `svar train` is passed."""
    return subset(config, training_reads(name, config))


class TrainingStopped(RuntimeError):
    """Raised by `train(..., stop_after=K)` after step K, as if the process had been killed."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device's generator too


def lr_at(step: int, total: int, warmup: int, base: float, schedule: str = "cosine") -> float:
    """Linear warm-up, then `schedule` over the rest: `cosine`, half a cosine to zero; or
    `usb_cosine`, cos(7π·p/16) (FixMatch's, USB's get_cosine_schedule_with_warmup with
    num_cycles 7/16), which ends at 0.2 of the peak."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "usb_cosine":
        return base * max(0.0, math.cos(7 * math.pi * progress / 16))
    raise ValueError(f"train.schedule: unknown schedule {schedule!r}; choose cosine or usb_cosine")


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two optimiser groups: the weights with `weight_decay`, and the parameters of norm layers
    and every bias (any parameter of one dimension) without, as USB's bn_wd_skip and timm do:
    decaying a batch-norm scale or a bias towards zero only fights the normalisation."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, opts: dict):
    groups = parameter_groups(model, opts["weight_decay"])
    if opts["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=opts["lr"])
    if opts["optimizer"] == "sgd":  # USB's: momentum 0.9, Nesterov
        return torch.optim.SGD(groups, lr=opts["lr"], momentum=0.9, nesterov=True)
    raise ValueError(f"train.optimizer: unknown optimizer {opts['optimizer']!r}; choose adamw or sgd")


class BatchVideos:
    """The videos a run trains on, with what the batch fields are built from: the teacher store,
    the labeled and unlabeled split rows, their teacher video features (computed once)."""

    def __init__(self, store: dict, labeled, unlabeled, method, num_classes: int):
        self.store, self.labeled, self.unlabeled, self.method, self.num_classes = (store, labeled, unlabeled, method,
                                                                                  num_classes)

    @functools.cached_property
    def t_l(self) -> torch.Tensor:
        return video_features(self.store, self.labeled["video_id"])

    @functools.cached_property
    def t_u(self) -> torch.Tensor:
        return video_features(self.store, self.unlabeled["video_id"])


# A batch's per-video fields besides its clips: (the method's need, None for every method; whose
# videos; the batch key; how the per-video tensor is built). A batch takes the sampled rows of
# each, in this order (the order batches have always held them).
BATCH_FIELDS = (
    (None, "labeled", "y_l", lambda v: torch.tensor(v.labeled["label"].to_numpy())),
    (None, "labeled", "t_l", lambda v: v.t_l),
    ("frame_features", "labeled", "tf_l", lambda v: frame_features(v.store, v.labeled["video_id"])),
    ("teacher_logits", "labeled", "zs_l", lambda v: zeroshot_logits(v.store, v.t_l, v.labeled["video_id"])),
    (None, "unlabeled", "t_u", lambda v: v.t_u),
    ("teacher_logits", "unlabeled", "zs_u", lambda v: zeroshot_logits(v.store, v.t_u, v.unlabeled["video_id"])),
    ("frame_features", "unlabeled", "tf_u", lambda v: frame_features(v.store, v.unlabeled["video_id"])),
    ("teacher_pseudo_labels", "unlabeled", "pl_u",
     lambda v: v.method.teacher_pseudo_labels(v.store, v.labeled, v.unlabeled, v.t_l, v.t_u, v.num_classes)),
)


class Trainer:
    """The state of one student run and its two moves: build a batch, take a step."""

    def __init__(self, manifest, split, store, method, options: dict, seed: int, threads: int = 1, clips=None,
                 prefetch: bool | None = None):
        """`clips`: the receipt of the shared clip cache's train part (svar.clips.store), or a
        ClipStore; None decodes the run's frames into memory. `prefetch`: cut the next batch in a
        background thread while a step runs (`next_batch`); None: where that pays (`prefetch_pays`)."""
        t_opts = method.train_settings(options["train"])
        self.method, self.t_opts = method, t_opts
        self.device = job_device(t_opts["device"], "train.device")
        labeled = split[split["role"] == "labeled"]
        unlabeled = split[split["role"] == "unlabeled"]
        # with every training video labeled (fraction 1) a batch has no unlabeled part, and the
        # methods leave their unlabeled terms out (svar.methods)
        self.batches_unlabeled = "unlabeled" in method.needs and len(unlabeled) > 0
        num_classes = len(store["class_names"])
        self.teacher_dim = store["text_embeddings"].shape[1]

        # the frames of the videos it trains on (the labeled ones, plus the unlabeled ones for the
        # methods that use them) and of its validation videos: from the shared clip cache (rule
        # clip_cache: nothing is decoded here), or decoded into memory (clip_cache.mode memory)
        ids = list(dict.fromkeys(list(labeled["video_id"]) + (list(unlabeled["video_id"]) if self.batches_unlabeled
                                                              else [])))
        val = split[split["role"] == "val"]
        self.spec = method.clip_spec(options, store)  # the student's clips, or the method's own
        if clips is None:
            clips = memory_train_store(manifest, ids, val["video_id"], self.spec, threads)
        elif not isinstance(clips, ClipStore):
            clips = ClipStore.open(clips)
        log.info("training clips from %s", clips.source)
        self.clips = clips.training_cache(ids, self.spec)
        # validation videos (split role val): their centre view, to log accuracy on; never trained on
        self.y_val = torch.tensor(val["label"].to_numpy())
        self.x_val = (eval_views(clips.validation_clips(val["video_id"], self.spec), self.spec.size, 1)[0]
                      if len(val) else None)
        row = {v: i for i, v in enumerate(ids)}
        rows_l = torch.tensor([row[v] for v in labeled["video_id"]], dtype=torch.long)
        rows_u = torch.tensor([row[v] for v in unlabeled["video_id"]] if self.batches_unlabeled else [],
                              dtype=torch.long)

        dev = self.device
        # what a batch takes of each sampled video besides its clip (what the method needs), on the device
        videos = BatchVideos(store, labeled, unlabeled, method, num_classes)
        per_labeled, per_unlabeled = {}, {}
        for need, role, key, build in BATCH_FIELDS:
            if (need is None or need in method.needs) and (role == "labeled" or self.batches_unlabeled):
                (per_labeled if role == "labeled" else per_unlabeled)[key] = build(videos).to(dev)
        # the unlabeled videos' true labels, for the pseudo-label diagnostics only: never in a batch
        self.diagnostics = (PseudoLabelDiagnostics(torch.tensor(unlabeled["label"].to_numpy()).to(dev), num_classes)
                            if self.batches_unlabeled else None)

        self.student = method.build_model(options, store, num_classes).to(dev)  # student.pretrained
        if isinstance(self.student, Student):
            self.student = channels_last_3d(self.student)  # see Student._input
        method.start(self.student, len(unlabeled) if self.batches_unlabeled else 0, num_classes, dev)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.optimizer = make_optimizer(self.student, t_opts)
        decay = float(options["train"]["ema"])
        if not 0 <= decay < 1:
            raise ValueError(f"train.ema: EMA decay must be in [0, 1) (0 = off), got {decay}")
        self.ema = EMA(self.student, decay) if decay > 0 else None
        self.generator = torch.Generator().manual_seed(seed)
        self.b_l = t_opts["batch_size"]
        self.b_u = t_opts["batch_size"] * t_opts["unlabeled_ratio"] if self.batches_unlabeled else 0
        self.prefetch = prefetch_pays(dev) if prefetch is None else bool(prefetch)
        self.batches = Batches(self.clips, self.spec, t_opts, method, self.generator, rows_l, rows_u, self.b_l,
                               self.b_u, per_labeled, per_unlabeled, dev, self.prefetch, pool_u=len(unlabeled))
        self._eval_model = None  # the EMA weights' model for validation, built once

    # ------------------------------------------------------------------ batches

    def next_batch(self, prefetch_next: bool = True) -> dict:
        """The batch the method asks for; the generator's draws always in the same order. With
        `prefetch` on, the batch after it is cut in a background thread while the caller's step
        runs (svar.batches), and the batches are those of in-line building."""
        return self.batches.next(prefetch_next)

    def close(self) -> None:
        """Stop the batches' background thread, if any."""
        self.batches.close()

    @property
    def clips_per_step(self) -> int:
        return self.b_l + self.b_u

    # ------------------------------------------------------------------ steps

    def step(self, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        """One optimiser step at schedule position `step`; returns the (detached) loss and logs."""
        t = self.t_opts
        lr = lr_at(step, t["steps"], t["warmup_steps"], t["lr"], t["schedule"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast(self.device):
            loss, logs = self.method.loss(self.student, batch, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.method.after_step(self.student)
        if self.ema is not None:
            self.ema.update(self.student)
        pseudo_labels = logs.pop("pseudo_labels", None)
        if pseudo_labels is not None and self.diagnostics is not None:
            logs["pl_accuracy"] = self.diagnostics.score(batch["idx_u"], *pseudo_labels)
        return loss.detach(), {"lr": lr, **logs}

    def eval_state_dict(self) -> dict:
        return self.ema.state if self.ema is not None else self.student.state_dict()

    @torch.no_grad()
    def validation_accuracy(self) -> float | None:
        """Top-1 on the validation videos' centre view, of the weights evaluation will use (the
        EMA's when train.ema is on); None without validation videos. Draws no random numbers."""
        if self.x_val is None:
            return None
        model = self.student
        if self.ema is not None:
            if self._eval_model is None:
                self._eval_model = copy.deepcopy(self.student)
            model = self._eval_model
            model.load_state_dict(self.ema.state)
        was_training = model.training
        model.eval()
        correct = 0
        # in batches of the labeled batch: never more clips at once than a training step holds
        # (64 at once took r3d_18 to 5.7 GB on a CPU: `svar bench scale`)
        for x, y in zip(self.x_val.split(self.b_l), self.y_val.split(self.b_l)):
            with autocast(self.device):
                logits = model(to_device(x.contiguous(), self.device))[0]
            correct += int((logits.argmax(1).cpu() == y).sum())
        model.train(was_training)
        return correct / len(self.y_val)

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> dict:
        state = {
            "model": self.student.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            **self.batches.state_dict(),  # generator, samplers: from before a batch in flight
            "method": self.method.state_dict(),
            "diagnostics": self.diagnostics.counts if self.diagnostics is not None else None,
            "rng_torch": torch.get_rng_state(),
            "rng_numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
            "rng_numpy_pos": int(np.random.get_state()[2]),
            "rng_python": random.getstate(),
        }
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.student.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.batches.load_state_dict(state)
        self.method.load_state_dict(state["method"])
        if self.diagnostics is not None:
            self.diagnostics.counts.copy_(state["diagnostics"])
        torch.set_rng_state(state["rng_torch"])
        np.random.set_state(("MT19937", state["rng_numpy"].numpy().astype(np.uint32), state["rng_numpy_pos"]))
        random.setstate(state["rng_python"])
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])


def _store_digest(store: dict) -> str:
    """The teacher store's content: its per-video tensors, text embeddings, scale, classes and meta."""
    digest = hashlib.sha256()
    for key in ("frame_features", "text_embeddings", *(k for k in PER_VIDEO_KEYS[1:] if k in store)):
        digest.update(store[key].contiguous().view(torch.uint8).numpy().tobytes())
    digest.update(json.dumps([store["video_ids"], store["class_names"], store["logit_scale"], store["meta"]],
                             sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _fingerprint(method_name: str, options: dict, seed: int, split, manifest, store) -> str:
    """What a resume checkpoint must match, all the job reads: the method, its options and seed,
    the split's roles, the manifest rows of its videos and the teacher store's content."""
    ids = set(split["video_id"])
    videos = manifest[manifest["video_id"].isin(ids)][["video_id", "path", "frames"]]
    spec = {"method": method_name, "options": plain(options), "seed": seed,
            "split": sorted(map(list, split[["video_id", "role"]].itertuples(index=False))),
            "videos": sorted(map(list, videos.itertuples(index=False))), "teacher": _store_digest(store)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _numbers(pending: list) -> list[dict]:
    """Curve rows with the logged tensors turned into floats (one device sync for all)."""
    if not pending:
        return []
    values = torch.stack([torch.stack([row["loss"], *row["logs"].values()]) for row in pending]).cpu().tolist()
    rows = []
    for row, vals in zip(pending, values):
        rows.append({"step": row["step"], "lr": row["lr"], "loss": vals[0], **dict(zip(row["logs"], vals[1:]))})
    return rows


def train(manifest, split, store, method_name: str, options: dict, out, seed: int, run_info: dict,
          threads: int = 1, curve_out=None, stop_after: int | None = None, clips=None,
          pseudo_labels_out=None) -> dict:
    """Train (or fit) one run; write its checkpoint to `out`, its training curve to `curve_out`.

    With `train.checkpoint_every` N > 0 the run's full state is saved every N steps to
    `<out>.resume.pt`; a run that finds that file (made from the same inputs: method, options,
    seed, split, videos and teacher features) continues from it and ends with the same weights as an uninterrupted run. The file is removed
    once the final checkpoint is written. `stop_after` (tests) raises TrainingStopped after that
    many steps, as a kill would.
    """
    curve_out = curve_out or f"{out}.curve.csv"
    pseudo_labels_out = pseudo_labels_out or f"{out}.pseudo_labels.csv"
    torch.set_num_threads(threads)
    seed_everything(seed)
    method = get_method(method_name, options)
    labeled = split[split["role"] == "labeled"]
    unlabeled = split[split["role"] == "unlabeled"]
    num_classes = len(store["class_names"])
    meta = {**run_info, "method": method_name, "seed": seed, "options": plain(options),
            "n_labeled": len(labeled), "n_unlabeled": len(unlabeled), "teacher": store["meta"]}

    if not method.trains_student:  # a teacher-feature head (svar.methods.teacher_heads)
        head, curve = method.fit(store, labeled, num_classes, seed)
        ckpt = {**head, "meta": meta}
        torch_save(out, ckpt)
        write_text(curve_out, _curve_csv(curve) if curve else "step,loss\n")  # a closed-form head has no steps
        write_text(pseudo_labels_out, csv_text([], PseudoLabelDiagnostics.COLUMNS))  # it uses no unlabeled video
        return ckpt

    t_opts = options["train"]
    trainer = Trainer(manifest, split, store, method, options, seed, threads, clips)
    steps = t_opts["steps"]
    every = int(options["train"]["checkpoint_every"])
    val_every = int(options["train"].get("val_every", 0))
    if every < 0:
        raise ValueError(f"train.checkpoint_every: must be >= 0 (0 = off), got {every}")
    resume_path = Path(f"{out}.resume.pt")
    fingerprint = _fingerprint(method_name, options, seed, split, manifest, store)
    curve, pending, start = [], [], 0
    state = None
    if resume_path.exists():
        try:
            state = load_torch(resume_path, "resume checkpoint", "train")
        except CorruptFileError as exc:
            log.warning("%s; starting from step 0", exc)
    if state is not None:
        if state.get("fingerprint") == fingerprint:
            trainer.load_state_dict(state["trainer"])
            curve, start = state["curve"], state["step"]
            log.info("%s: resuming from %s at step %d of %d", method_name, resume_path, start, steps)
        else:
            log.warning("%s: ignoring %s: it was made from other inputs (method, options, seed, split, videos or "
                        "teacher features); starting from step 0", method_name, resume_path)

    def flush():
        rows = _numbers(pending)
        pending.clear()
        for row in rows:
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(f"{method_name}: loss became {row['loss']} at step {row['step']}; "
                                         "lower train.lr")
        curve.extend(rows)

    trainer.student.train()
    try:
        for step in tqdm(range(start, steps), desc=f"train {method_name}", unit="step", initial=start, total=steps):
            # the batch after this one is cut in the background while this step runs (Trainer.prefetch)
            loss, logs = trainer.step(trainer.next_batch(prefetch_next=step + 1 < steps), step)
            lr = logs.pop("lr")
            pending.append({"step": step, "lr": lr, "loss": loss, "logs": logs})
            done = step + 1
            if len(pending) >= LOG_EVERY or done == steps:
                flush()
            if trainer.x_val is not None and (done == steps or (val_every and done % val_every == 0)):
                flush()
                curve[-1]["val_top1"] = trainer.validation_accuracy()
            if every and done % every == 0 and done < steps:
                flush()
                torch_save(resume_path, {"version": 1, "fingerprint": fingerprint, "step": done,
                                         "trainer": trainer.state_dict(), "curve": curve})
            if stop_after is not None and done >= stop_after and done < steps:
                raise TrainingStopped(f"{method_name}: stopped after step {done} (stop_after)")
    finally:
        trainer.close()

    meta["n_val"] = len(trainer.y_val)
    # the last validation accuracy: what hyperparameters are chosen on (never the test list)
    meta["val_top1"] = curve[-1].get("val_top1") if curve else None
    meta["clips"] = trainer.spec.describe()
    meta["student_init"] = trainer.student.init  # scratch, or which weights it started from
    ema = trainer.ema
    meta["weights"] = (f"EMA of the weights (decay {ema.decay}, {ema.updates} updates)" if ema is not None
                       else "the final weights")
    model = trainer.student
    ckpt = {"kind": "student", "arch": model.arch, "num_classes": num_classes, "teacher_dim": trainer.teacher_dim,
            "state_dict": trainer.eval_state_dict(), "meta": meta}
    if not isinstance(model, Student):  # how evaluation rebuilds it (svar.students.model_from_checkpoint)
        ckpt["model"] = model.describe()
    torch_save(out, ckpt)
    write_text(curve_out, _curve_csv(curve))
    # per true class, over the whole run (the curve has them per logged step)
    diagnostics = trainer.diagnostics
    write_text(pseudo_labels_out, csv_text(diagnostics_rows(store["class_names"], diagnostics.counts)
                                            if diagnostics is not None else [], PseudoLabelDiagnostics.COLUMNS))
    if resume_path.exists():
        resume_path.unlink()
    log.info("%s: final loss %.4f after %d steps", method_name, curve[-1]["loss"], steps)
    return ckpt


def _curve_csv(curve: list[dict]) -> str:
    return csv_text(curve, list(dict.fromkeys(k for row in curve for k in row)))
