"""Evaluation on the official test list: top-1, top-5 and mean-class accuracy of the final model.

The reported accuracy is always the final model's: no checkpoint is ever chosen by test score.
How a student is scored (clips per video, batch size, device) is evaluation's own setting, the
config's `evaluate` section, passed to the job that scores it; what the model takes as input
(frames, size) is the model's, read from its checkpoint.
"""

from __future__ import annotations

import logging

import torch
from tqdm import tqdm

from .atomic import write_json
from .clips.sampling import ClipSpec
from .clips.store import ClipStore, memory_test_store
from .clips.views import eval_views, to_device
from .config import default
from .device import autocast, job_device
from .provenance import source_version
from .readers import load_torch
from .methods import head_logits
from .students import model_from_checkpoint
from .video import decoder_versions
from .wording import counted

log = logging.getLogger(__name__)


def accuracy_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    pred = logits.argmax(1)
    # with 5 classes or fewer every prediction is in the top 5: the number would say nothing
    top5 = ((logits.topk(5, dim=1).indices == labels[:, None]).any(1).float().mean().item() if num_classes > 5
            else None)
    per_class = []
    for c in range(num_classes):
        mask = labels == c
        per_class.append((pred[mask] == c).float().mean().item() if mask.any() else float("nan"))
    present = [a for a in per_class if a == a]
    return {
        "top1": (pred == labels).float().mean().item(),
        "top5": top5,
        "mean_class": sum(present) / len(present),
        "per_class": per_class,
        "predictions": pred.tolist(),
    }


class TestClips:
    """Where a job's test clips come from, shared by every run it scores (the test list is the
    official one whatever the fraction and seed): the shared clip cache's test part (rule
    clip_cache), or, without one, the test frames decoded into memory once for all the runs."""

    def __init__(self, manifest, threads: int = 1, receipt=None):
        self.manifest, self.threads = manifest, threads
        self.shared = ClipStore.open(receipt) if receipt else None
        self.decoded = {}

    def store(self, video_ids, spec: ClipSpec, n_clips: int) -> ClipStore:
        if self.shared is not None:
            return self.shared
        key = (tuple(video_ids), spec, n_clips)
        if key not in self.decoded:
            self.decoded[key] = memory_test_store(self.manifest, video_ids, spec, n_clips, self.threads)
        return self.decoded[key]


def evaluate_settings(clips: int = default("evaluate.clips"), batch_size: int = default("evaluate.batch_size"),
                      device: str = default("evaluate.device"), crops: int = default("evaluate.crops")) -> dict:
    """The config's `evaluate` section, complete: how a student is scored."""
    for key, value in (("clips", clips), ("crops", crops), ("batch_size", batch_size)):
        if int(value) < 1:
            raise ValueError(f"evaluate.{key}: must be at least 1, got {value}")
    return {"clips": int(clips), "crops": int(crops), "batch_size": int(batch_size), "device": device}


def views_text(settings: dict) -> str:
    """'10 clips × 3 crops': the test views whose logits are averaged."""
    clips, crops = settings["clips"], settings["crops"]
    return f"{counted(clips, 'clip')} × {counted(crops, 'crop')}"


def model_clips(ckpt: dict) -> ClipSpec:
    """The clips the model was trained on, as its checkpoint records them (the student's, or the
    method's own: clip_finetune's frames over the whole video at the teacher's input size), so
    its test clips are sampled the same way."""
    clips = ckpt["meta"]["clips"]
    return ClipSpec(**{**clips, "cache_size": tuple(clips["cache_size"])})


@torch.no_grad()
def test_logits(ckpt: dict, manifest, test, store, threads: int = 1, clips: TestClips | None = None,
                settings: dict | None = None) -> torch.Tensor:
    """Logits of the test videos averaged over `clips` × `crops` views (evaluate settings)."""
    if ckpt["kind"] != "student":  # a teacher-only baseline: scored on the stored features
        return head_logits(ckpt, store, test["video_id"])
    settings = settings or evaluate_settings()
    clips = clips or TestClips(manifest, threads)
    spec = model_clips(ckpt)
    device = job_device(settings["device"], "evaluate.device")
    student = model_from_checkpoint(ckpt).to(device).eval()
    n_clips, n_crops = settings["clips"], settings["crops"]
    ids = list(test["video_id"])
    store = clips.store(ids, spec, n_clips)
    log.info("test clips from %s", store.source)
    # batch by batch of test videos, every view of a batch before the next: memory holds one batch
    # of clips whatever the number of test videos or of runs
    outs = []
    # counted in videos, the unit a test list is sized in: a bar of batches read 0/1 for the minutes
    # one batch of 64 videos × every view takes
    with tqdm(total=len(ids), desc="score test videos", unit="video") as progress:
        for first in range(0, len(ids), settings["batch_size"]):
            batch, total = ids[first:first + settings["batch_size"]], 0
            for c in range(n_clips):
                for view in eval_views(store.view_clips(batch, spec, c, n_clips), spec.size, n_crops):
                    with autocast(device):
                        total = total + student(to_device(view.contiguous(), device))[0].float().cpu()
            outs.append(total)
            progress.update(len(batch))
    if not outs:
        return torch.zeros((0, ckpt["num_classes"]))
    return torch.cat(outs) / (n_clips * n_crops)


def evaluate(ckpt_path, manifest, split, store, out, threads: int = 1, clips: TestClips | None = None,
             settings: dict | None = None) -> dict:
    """Score one run's final model on its split's test videos; write and return its metrics."""
    torch.set_num_threads(threads)
    ckpt = load_torch(ckpt_path, "trained model", "train")
    test = split[split["role"] == "test"]
    labels = torch.tensor(test["label"].to_numpy())
    settings = settings or evaluate_settings()
    logits = test_logits(ckpt, manifest, test, store, threads, clips, settings)
    metrics = accuracy_metrics(logits, labels, len(store["class_names"]))
    meta = ckpt["meta"]
    teacher = meta["teacher"]
    result = {
        **{k: meta[k] for k in ("dataset", "method", "fraction", "seed", "n_labeled", "n_unlabeled")},
        **({"shots": meta["shots"]} if "shots" in meta else {}),  # a K-shot run (fraction None)
        "top1": metrics["top1"], "top5": metrics["top5"], "mean_class": metrics["mean_class"],
        "n_test": len(test),
        "per_class": dict(zip(store["class_names"], metrics["per_class"])),
        "test_video_ids": list(test["video_id"]),
        "test_labels": labels.tolist(),
        "test_predictions": metrics["predictions"],
        # how the split was made: convention, pool, list source (seed or published files + sha256),
        # what the seed varies, counts (svar.splits.split_info); None when trained without it
        "split": meta.get("split"),
        "accuracy_of": "final model (no test-set model selection)",
        "val_top1": meta.get("val_top1"), "n_val": meta.get("n_val"),
        # which weights of the final model were evaluated: the last step's, or their EMA (train.ema)
        "weights": meta.get("weights", "the final weights"),
        "teacher_random_weights": teacher["random_weights"],
        "provenance": {
            "teacher_model": teacher["model"],
            "teacher_weights": teacher["pretrained"],
            "student": ckpt.get("arch", "none (teacher only)"),
            # how the student was initialised: scratch, or which weights (svar.students)
            "student_init": meta.get("student_init", "scratch") if ckpt["kind"] == "student" else None,
            "options": meta["options"],
            # how a student was scored; teacher-only heads are scored on the stored features
            "evaluate": settings if ckpt["kind"] == "student" else None,
            # what a student saw of each video: its clips (sampling, frames, stride, sizes) and the
            # test views, clips × crops, whose logits were averaged
            "clips": meta.get("clips"),
            "views": (views_text(settings) if ckpt["kind"] == "student" else "the teacher's stored video features"),
            "split_convention": (meta.get("split") or {}).get("convention", "unrecorded"),
            "decoders": decoder_versions(),
            **source_version(),  # git_commit, git_dirty: of svar's own checkout
        },
    }
    if teacher["random_weights"]:
        result["WARNING"] = "teacher weights are random: these numbers do not measure the method"
    write_json(out, result)
    return result


def evaluate_runs(runs, manifest, store, threads: int = 1, settings: dict | None = None, clips=None) -> list[dict]:
    """Score several runs, (checkpoint, split, metrics out) each, reading the test clips from the
    shared clip cache's receipt `clips` (or decoding them once for all the runs).

    Each run's metrics file is written as soon as it is scored, so an interrupted job keeps the
    ones it finished."""
    from .splits import load_split

    clips = TestClips(manifest, threads, clips)
    return [evaluate(model, manifest, load_split(split), store, out, threads, clips, settings)
            for model, split, out in runs]
