"""clip_finetune as ViFi-CLIP: which CLIP towers a step trains (clip_finetune.tune), its own clips
over the whole video at the teacher's input size (training, validation and test), its own clip
cache parts, and a run trained and scored from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from svar.clips.cache_parts import cache_reads
from svar.clips.finetune_clips import finetune_spec
from svar.clips.receipt import gather
from svar.clips.sampling import ClipSpec
from svar.clips.shards import build_shard
from svar.clips.store import ClipCache, take_clips
from svar.config import subset
from svar.methods import get_method
from svar.splits import make_split
from svar.trainer import Trainer, train, training_reads

from test_training import OPTIONS, with_options

RUN = {"dataset": "synthetic", "fraction": 0.5}
TINY_CLIP_SIZE = 64  # svar-tiny-clip's input size (svar/model_configs/svar-tiny-clip.json)


def tuned_step(manifest, store, tune: str):
    """(parameters before, after) one training step with `tune`, and the trainer (two of its
    unlabeled videos for validation)."""
    options = with_options(clip_finetune={"tune": tune})
    split = make_split(manifest, 0.5, seed=0)
    split.loc[split.index[split["role"] == "unlabeled"][:2], "role"] = "val"
    trainer = Trainer(manifest, split, store, get_method("clip_finetune", options), options, 0)
    before = {k: v.detach().clone() for k, v in trainer.student.state_dict().items()}
    trainer.step(trainer.next_batch(prefetch_next=False), 0)
    return before, trainer.student.state_dict(), trainer


def changed(before, after, prefix: str) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


def test_tune_both_trains_both_towers_and_the_logit_scale(tiny_manifest, tiny_store):
    manifest, _ = tiny_manifest
    before, after, trainer = tuned_step(manifest, tiny_store, "both")
    assert changed(before, after, "clip.visual.") and changed(before, after, "clip.transformer.")
    assert changed(before, after, "clip.text_projection") and changed(before, after, "clip.logit_scale")
    # ViFi-CLIP encodes the prompts' tokens once: their embeddings are never tuned
    assert not changed(before, after, "clip.token_embedding.")
    trained = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert id(trainer.student.clip.token_embedding.weight) not in trained


def test_tune_image_keeps_the_text_side_fixed(tiny_manifest, tiny_store):
    manifest, _ = tiny_manifest
    before, after, trainer = tuned_step(manifest, tiny_store, "image")
    assert changed(before, after, "visual.")
    assert not any(k.startswith("clip.") for k in after)  # no text tower kept: its class embeddings computed once
    for fixed in ("class_embeddings", "logit_scale", "prompt_tokens"):
        assert torch.equal(before[fixed], after[fixed]), fixed
    trained = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for p in trainer.student.visual.parameters()}


def test_tune_text_keeps_the_image_tower_fixed(tiny_manifest, tiny_store):
    manifest, _ = tiny_manifest
    before, after, trainer = tuned_step(manifest, tiny_store, "text")
    assert changed(before, after, "clip.transformer.")
    assert not changed(before, after, "clip.visual.") and not changed(before, after, "clip.logit_scale")
    assert not any(p.requires_grad for p in trainer.student.clip.visual.parameters())


def test_an_unknown_tune_is_named(tiny_store):
    from svar.config import enum_of
    from svar.teacher.video_classifier import TUNED, clip_classifier

    assert set(enum_of("clip_finetune.tune")) == set(TUNED)  # the schema's values are the ones it knows

    with pytest.raises(ValueError, match="clip_finetune.tune: 'vision'"):
        clip_classifier(tiny_store, "vision", ["a photo of a {}."])


def test_its_clips_are_its_own_at_the_teachers_input_size(tiny_manifest, tiny_store):
    """Its trainer samples clip_finetune.frames of clip_finetune.cache_frames cached frames at the
    encoder's input size, not the student's clips; a student's trainer is unchanged."""
    manifest, _ = tiny_manifest
    _, _, trainer = tuned_step(manifest, tiny_store, "both")
    section = OPTIONS["clip_finetune"]
    assert trainer.spec == finetune_spec(section, TINY_CLIP_SIZE)
    assert trainer.spec.size == TINY_CLIP_SIZE != OPTIONS["student"]["size"]
    assert set(trainer.clips.lengths.tolist()) == {section["cache_frames"]}
    batch = trainer.next_batch(prefetch_next=False)
    assert batch["x_l"].shape[1:] == (section["frames"], TINY_CLIP_SIZE, TINY_CLIP_SIZE, 3)
    assert trainer.x_val.shape == (2, *batch["x_l"].shape[1:])  # validation scores the same clips
    options = with_options()
    student = Trainer(manifest, make_split(manifest, 0.5, seed=0), tiny_store, get_method("supervised", options),
                      options, 0)
    assert student.spec == ClipSpec.from_options(OPTIONS["student"])


def drawn_frames(spec: ClipSpec, n_frames: int, draws: int = 50) -> np.ndarray:
    """[draws, frames]: the frame numbers of training clips of an n-frame video, read from a cache
    whose every pixel of a frame holds its frame number."""
    kept = spec.cached_indices(n_frames)
    pixels = np.broadcast_to(kept.astype(np.uint16)[:, None, None, None] % 256, (len(kept), 1, 1, 3))
    cache = ClipCache(np.ascontiguousarray(pixels).astype(np.uint8), np.array([0]), np.array([len(kept)]))
    generator = torch.Generator().manual_seed(0)
    rows = torch.zeros(draws, dtype=torch.long)
    return take_clips(cache, rows, spec, generator)[..., 0, 0, 0].numpy().astype(np.int64)


def test_its_training_and_test_frames_span_the_whole_video():
    """ViFi-CLIP's sampling: one frame from each of `frames` equal segments of the whole video,
    in training (a random one) and test (the centre); a student's dense clip is a short stretch."""
    n, section = 240, {"frames": 32, "cache_frames": 64, "cache_size": [256, 256]}
    spec = finetune_spec(section, 224)
    segment = n / section["frames"]
    train_frames = drawn_frames(spec, n)
    first, last = np.floor(np.arange(32) * segment), np.ceil((np.arange(32) + 1) * segment)
    assert ((train_frames >= first) & (train_frames < last)).all()  # one frame a segment, every segment
    assert len(np.unique(train_frames[:, 0])) > 1  # a random frame of the segment, not always the same
    test = spec.test_indices(n, 0, 1)
    assert np.array_equal(test, np.floor((np.arange(32) + 0.5) * segment).astype(np.int64))  # the segment centres
    dense = ClipSpec.from_options({"sampling": "dense", "frames": 16, "stride": 4, "cache_size": [128, 171],
                                   "size": 112})
    student_frames = drawn_frames(dense, n)
    assert (np.ptp(student_frames, axis=1) < n / 3).all() and (np.ptp(train_frames, axis=1) > 0.9 * n).all()


def test_a_cache_smaller_than_the_teachers_input_is_named():
    with pytest.raises(ValueError, match=r"clip_finetune.cache_size: \[128, 128\] is smaller than the teacher's"):
        finetune_spec({"frames": 8, "cache_frames": 8, "cache_size": [128, 128]}, 224)
    with pytest.raises(ValueError, match="clip_finetune.frames: 16 frames a clip"):
        finetune_spec({"frames": 16, "cache_frames": 8, "cache_size": [256, 256]})


def test_its_reads_are_its_own_section_and_its_cache_parts(tiny_store):
    """Its runs read its section, the trainer's settings and the crop's key: no student key; its
    cache parts are decided by its frames keys, never the student's."""
    config = {**with_options(), "dataset": {"split": 1}}
    reads = training_reads("clip_finetune", config)
    assert not any(k.startswith("student") for k in reads) and "clip_finetune" in reads
    assert "train.crop_padding" in reads and "train.lr" not in reads
    assert set(cache_reads(config, "clip_finetune_train")) == {
        "clip_finetune.frames", "clip_finetune.cache_frames", "clip_finetune.cache_size", "dataset.split"}
    assert set(cache_reads(config, "clip_finetune_test")) == set(cache_reads(config, "clip_finetune_train")) | {
        "evaluate.clips"}
    assert not any(k.startswith("clip_finetune") for k in cache_reads(config, "train"))


def test_trained_and_scored_from_its_own_cache_parts(tiny_manifest, tiny_store, tmp_path):
    """A run trained and scored from its shared cache parts: the test clips are its own frames
    over the whole video at the teacher's size (the checkpoint records them), and the same
    scores as decoding them in memory."""
    from svar.evaluate import evaluate_runs, model_clips

    manifest, _ = tiny_manifest
    config = {**with_options(), "dataset": {"split": 1}, "evaluate": {"clips": 2}}
    receipts = {}
    for videos in ("train", "test"):
        part = f"clip_finetune_{videos}"
        options = subset(config, cache_reads(config, part))
        files = [build_shard(manifest, part, options, i, 2, tmp_path / part / f"shard_{i:03d}_of_002.npy")
                 for i in range(2)]
        receipts[videos] = tmp_path / f"{part}.json"
        gather(files, receipts[videos])
    split = make_split(manifest, 0.5, seed=0)
    split.to_csv(tmp_path / "split.csv", index=False)
    options = with_options(train={"steps": 2})
    cached = train(manifest, split, tiny_store, "clip_finetune", options, tmp_path / "cached.pt", 0, RUN,
                   clips=receipts["train"])
    decoded = train(manifest, split, tiny_store, "clip_finetune", options, tmp_path / "memory.pt", 0, RUN)
    assert all(torch.equal(decoded["state_dict"][k], cached["state_dict"][k]) for k in decoded["state_dict"])
    assert model_clips(cached) == finetune_spec(OPTIONS["clip_finetune"], TINY_CLIP_SIZE)
    settings = {"clips": 2, "crops": 1, "batch_size": 5, "device": "cpu"}
    from_cache, from_memory = (
        evaluate_runs([(tmp_path / f"{name}.pt", tmp_path / "split.csv", tmp_path / f"{name}.json")], manifest,
                      tiny_store, settings=settings, clips=receipt)[0]
        for name, receipt in (("cached", receipts["test"]), ("memory", None)))
    assert from_cache["test_predictions"] == from_memory["test_predictions"] and from_cache["n_test"] > 0
    assert from_cache["provenance"]["clips"]["frames"] == OPTIONS["clip_finetune"]["frames"]


def test_the_plan_sizes_its_own_cache_parts():
    """With clip_finetune in the grid the plan counts its two cache parts' shard jobs and bytes:
    every kept frame at clip_finetune.cache_size."""
    import copy

    import pandas as pd

    from svar.config import load_workflow_config
    from svar.datasets import dataset_shape
    from svar.plan import RATE_COLUMNS, plan

    config = load_workflow_config()
    with_finetune = copy.deepcopy(config)
    with_finetune["methods"] = ["supervised", "clip_finetune"]
    config["methods"] = ["supervised"]
    no_rates = pd.DataFrame(columns=RATE_COLUMNS)
    students, both = (plan(c, rates=no_rates).set_index("stage").loc["clip_cache_shard"] for c in (config, with_finetune))
    assert both["jobs"] == 2 * students["jobs"] and "clip_finetune_test part" in both["note"]
    shape, section = dataset_shape(config), with_finetune["clip_finetune"]
    h, w = section["cache_size"]
    # the distinct frames of cache_frames a training video, of at least `frames` a test video
    counts = shape.frame_counts or [[round(shape.frames)] * shape.train_videos, [round(shape.frames)] * shape.test_videos]
    kept = sum(min(section["cache_frames"], int(n)) for n in counts[0]) + sum(min(section["frames"], int(n))
                                                                               for n in counts[1])
    at_least = kept * h * w * 3
    assert (both["est_disk_mb"] - students["est_disk_mb"]) * 1e6 >= at_least * 0.999
