"""The trainer and the methods: losses that depend on what they should, steps that learn,
the same seed giving the same weights, every student architecture training, augmentations
and EMA (the shared clip cache: test_clip_cache.py)."""

import copy
import functools

import numpy as np
import pytest
import torch

from svar.clips.sampling import ClipSpec
from svar.clips.store import ClipCache, take_clips
from svar.clips.views import crop_boxes, eval_views, strong_augment, train_crops
from svar.config import defaults, merge, validate
from svar.methods import METHODS, NEEDS, get_method
from svar.trainer import options_for, training_reads
from svar.splits import make_split
from svar.students import STUDENTS, Student
from svar.trainer import Trainer, train

def method_sections() -> dict:
    """Each method's own config section (schema defaults), set to show what its loss depends on:
    every pseudo-label counts (thresholds 0) at full weight (1) from the first step (no ramp)."""
    sections = {}
    for name in METHODS:
        if name in defaults():
            section = dict(defaults()[name])
            for key in section:
                if key.endswith("threshold"):
                    section[key] = 0.0
            sections[name] = {**section, **{k: v for k, v in (("weight", 1.0), ("unsup_warmup", 0)) if k in section}}
    return sections


OPTIONS = {
    "student": {"arch": "tiny3d", "pretrained": "none", "sampling": "segments", "frames": 4, "size": 16,
                "cache_size": [16, 16], "cache_frames": 4},
    "train": {"steps": 4, "batch_size": 4, "unlabeled_ratio": 1, "optimizer": "adamw", "lr": 0.003,
              "weight_decay": 0.05, "schedule": "cosine", "warmup_steps": 1, "device": "cpu", "crop": "random",
              "crop_padding": 4, "flip": False, "strong_area": [0.5, 1.0], "strong_cutout": [0.2, 0.4],
              "randaugment_ops": 2, "randaugment_magnitude": 9, "val_every": 0, "ema": 0.0, "checkpoint_every": 0},
    # each method's own section (derived: a new method's comes with it), then the tests' settings
    **{name: section for name, section in method_sections().items()},
    "distill_kd": {**method_sections()["distill_kd"], "temperature": 2.0},
    "mean_teacher": {**method_sections()["mean_teacher"], "ema_decay": 0.9},
    # 4 of 8 cached frames at the tiny teacher's 64 pixels (ViFi-CLIP's 32 at 256 decode too much here)
    "clip_finetune": {**method_sections()["clip_finetune"], "lr": 1e-4, "frames": 4, "cache_frames": 8,
                      "cache_size": [64, 64]},
    "temporal_probe": {**method_sections()["temporal_probe"], "heads": 2, "steps": 5, "batch_size": 4},
    "teacher": {"cache_dir": "data/weights", "offline": True},
    "linear_probe": {"l2": 0.001, "max_iter": 20},
    "evaluate": {"clips": 1},
}
STUDENT_METHODS = sorted(name for name, cls in METHODS.items() if cls.trains_student)


def with_options(**sections):
    """OPTIONS with some keys changed: with_options(distill={"frame_level": True})."""
    options = copy.deepcopy(OPTIONS)
    for section, values in sections.items():
        options[section].update(values)
    return options


# every student method, and the variants of its options that change what its loss depends on
VARIANTS = {
    "supervised": {},
    "distill": {},
    "distill_frame_level": {"distill": {"frame_level": True}},
    "distill_pl": {},
    "distill_pl_student": {"distill_pl": {"source": "student"}},
    "teacher_pl": {},
    "pseudo_label": {},
    "fixmatch": {},
    # FlexMatch's thresholds: at the first step every class's is 0, so it counts every pseudo-label
    "fixmatch_flexmatch": {"fixmatch": {"threshold": 0.95, "threshold_mode": "flexmatch"}},
    "distill_kd": {},
    "mean_teacher": {},
    "clip_finetune": {},
}
METHOD_OF = {v: v.rsplit("_frame_level", 1)[0].rsplit("_student", 1)[0].rsplit("_flexmatch", 1)[0] for v in VARIANTS}


def make_batch(seed=0, classes=4, dim=8, k=3):
    g = torch.Generator().manual_seed(seed)
    clip = lambda n: torch.randint(0, 256, (n, 8, 16, 16, 3), dtype=torch.uint8, generator=g)  # T' = 2 in tiny3d
    feat = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape, dim, generator=g), dim=-1)
    return {"x_l": clip(4), "y_l": torch.arange(4) % classes, "t_l": feat(4), "tf_l": feat(4, k),
            "x_u": clip(4), "x_u_strong": clip(4), "t_u": feat(4), "tf_u": feat(4, k),
            "pl_u": torch.softmax(3 * torch.randn(4, classes, generator=g), -1),
            "zs_l": 10 * torch.randn(4, classes, generator=g), "zs_u": 10 * torch.randn(4, classes, generator=g),
            "idx_u": torch.arange(4)}


@functools.lru_cache(maxsize=1)
def fitted_student_state():
    """A student fitted to make_batch()'s labeled clips: its predictions differ from clip to clip,
    so losses with student-made pseudo-labels visibly depend on the unlabeled clips."""
    torch.manual_seed(0)
    student = Student("tiny3d", 4, 8)
    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3)
    batch = make_batch()
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(student(batch["x_l"])[0], batch["y_l"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return copy.deepcopy(student.state_dict())


def loss_of(method, batch):
    student = Student("tiny3d", 4, 8)
    student.load_state_dict(fitted_student_state())
    student.eval()  # eval: batch statistics must not blur the comparison
    method.start(student, 4, 4)  # a fresh state (mean_teacher's EMA teacher, FlexMatch's selections)
    return method.loss(student, batch)[0].item()


def test_every_student_method_has_a_variant_here():
    assert {METHOD_OF[v] for v in VARIANTS} == set(STUDENT_METHODS)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_loss_is_finite_and_depends_on_the_right_inputs(variant):
    name = METHOD_OF[variant]
    method = get_method(name, with_options(**VARIANTS[variant]))
    batch = make_batch()
    base = loss_of(method, batch)
    assert torch.isfinite(torch.tensor(base))
    other = make_batch(seed=1)
    changed = {
        "labels": {**batch, "y_l": (batch["y_l"] + 1) % 4},
        "teacher": {**batch, "t_l": -batch["t_l"], "t_u": -batch["t_u"]},
        "teacher_frames": {**batch, "tf_l": batch["tf_l"].roll(1, dims=1).neg(), "tf_u": -batch["tf_u"]},
        "pseudo": {**batch, "pl_u": batch["pl_u"].roll(1, dims=1)},
        "teacher_logits": {**batch, "zs_l": batch["zs_l"].roll(1, dims=1), "zs_u": batch["zs_u"].roll(1, dims=1)},
        # the labeled clips, which the fitted student tells apart, as the unlabeled ones
        "unlabeled": {**batch, "x_u": batch["x_l"]},
        "strong": {**batch, "x_u_strong": other["x_u_strong"]},
    }
    depends = {
        # what each variant's loss must change with; it must not change with the rest
        "supervised": {"labels"},
        "distill": {"labels", "teacher", "unlabeled"},
        "distill_frame_level": {"labels", "teacher_frames", "unlabeled"},
        "distill_pl": {"labels", "teacher", "pseudo", "unlabeled"},
        "distill_pl_student": {"labels", "teacher", "unlabeled", "strong"},
        "teacher_pl": {"labels", "pseudo", "unlabeled"},
        "pseudo_label": {"labels", "unlabeled"},
        "fixmatch": {"labels", "unlabeled", "strong"},
        "fixmatch_flexmatch": {"labels", "unlabeled", "strong"},
        "distill_kd": {"labels", "teacher_logits", "unlabeled"},
        "mean_teacher": {"labels", "unlabeled", "strong"},
        "clip_finetune": {"labels"},
    }[variant]
    for what, b in changed.items():
        if what in depends:
            assert loss_of(method, b) != base, f"{variant}: loss ignores {what}"
        else:
            assert loss_of(method, b) == base, f"{variant}: loss depends on {what}"


def test_batch_holds_only_what_the_method_needs():
    needs = lambda name, options=OPTIONS: get_method(name, options).needs  # noqa: E731
    assert needs("supervised") == set() and needs("fixmatch") == {"unlabeled", "strong_view"}
    for name in ("distill", "distill_pl", "pseudo_label", "teacher_pl"):
        assert "strong_view" not in needs(name)
    assert "strong_view" in needs("distill_pl", with_options(distill_pl={"source": "student"}))
    assert "teacher_pseudo_labels" in needs("distill_pl") and "teacher_pseudo_labels" not in needs(
        "distill_pl", with_options(distill_pl={"source": "student"}))
    assert "frame_features" not in needs("distill")
    assert "frame_features" in needs("distill", with_options(distill={"frame_level": True}))
    for name, cls in METHODS.items():  # every need a method declares is one the trainer builds
        assert not cls.trains_student or needs(name) <= set(NEEDS), name


# every method, and for those that take pseudo-labels or distil, each source and variant that
# changes what they read
READ_VARIANTS = [(name, {}) for name in METHODS] + [
    ("distill_pl", {"distill_pl": {"source": "student"}}), ("distill_pl", {"distill_pl": {"source": "teacher_probe"}}),
    ("teacher_pl", {"teacher_pl": {"source": "teacher_probe"}})] + [
    # 8 frames: tiny3d keeps 2 temporal positions of them, as frame-level distillation needs
    (name, {"distill": {"frame_level": True}, "student": {"frames": 8, "cache_frames": 8}})
    for name in ("distill", "distill_pl")]


@pytest.mark.parametrize("name,changes", READ_VARIANTS, ids=[f"{n}-{c}" for n, c in READ_VARIANTS])
def test_a_run_reads_only_the_keys_its_method_declares(tiny_manifest, tiny_store, tmp_path, name, changes):
    """Trained with its declared keys and nothing else (what the workflow passes), a method runs;
    any key it read without declaring it would be a KeyError here."""
    manifest, _ = tiny_manifest
    config = validate(merge({"name": "t", "fractions": [0.5], "seeds": [0], "methods": [name]}, with_options(
        train={"steps": 2}, **changes)))
    options = options_for(name, config)
    # its own section, distillation's and the probe's (clip_finetune: where the teacher's weights
    # are cached): never another method's
    assert set(options) <= {"student", "train", "distill", "linear_probe", name} | (
        {"teacher"} if name == "clip_finetune" else set())
    if not METHODS[name].trains_student:
        assert "student" not in options and "train" not in options
    train(manifest, make_split(manifest, 0.5, seed=0), tiny_store, name, options, tmp_path / "m.pt", 0,
          {"dataset": "synthetic", "fraction": 0.5})


def test_declared_keys_follow_the_pseudo_label_source():
    config = validate({"name": "t", "fractions": [0.5], "seeds": [0], "methods": ["supervised"]})
    reads = lambda name, **changes: set(training_reads(name, merge(config, changes)))  # noqa: E731
    assert "distill_pl.threshold" in reads("distill_pl") and "distill_pl.student_threshold" not in reads(
        "distill_pl")
    student = reads("distill_pl", distill_pl={"source": "student"})
    assert "distill_pl.student_threshold" in student and "distill_pl.threshold" not in student
    assert "linear_probe" in reads("distill_pl", distill_pl={"source": "teacher_probe"})
    assert "linear_probe" in reads("teacher_pl", teacher_pl={"source": "teacher_probe"})
    assert "linear_probe" not in reads("distill_pl") and reads("clip_linear_probe") == {"linear_probe"}
    assert reads("clip_zeroshot") == set() and "train.unlabeled_ratio" not in reads("supervised")
    assert "distill" in reads("distill_pl") and "distill" not in reads("teacher_pl")
    # each method reads its own section and no other method's
    for name in ("teacher_pl", "distill_pl", "pseudo_label", "fixmatch"):
        sections = {key.split(".")[0] for key in reads(name)} - {"student", "train", "distill", "linear_probe"}
        assert sections == {name}, name
        assert {f"{name}.weight", f"{name}.unsup_warmup"} <= reads(name)
    # the strong view's settings: fixmatch's, and distill_pl's only with the student as its source
    assert "train.strong_area" in reads("fixmatch") and "train.strong_area" not in reads("distill_pl")
    assert {"train.strong_cutout", "train.randaugment_ops"} <= reads("distill_pl", distill_pl={"source": "student"})
    # the clip keys of the mode in use only
    assert "student.cache_frames" in reads("supervised") and "student.stride" not in reads("supervised")
    dense = reads("supervised", student={"sampling": "dense"}, train={"crop": "random_resized"})
    assert {"student.stride", "train.crop_scale"} <= dense and not {"student.cache_frames", "train.crop_padding"} & dense


@pytest.mark.parametrize("kind", ["cosine", "mse", "smooth_l1"])
def test_distill_losses_are_zero_at_the_target(kind):
    from svar.methods import distill_loss

    target = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    assert distill_loss(3 * target, target, kind).item() == pytest.approx(0.0, abs=1e-6)
    assert distill_loss(-target, target, kind).item() > 0.1


def test_training_steps_lower_the_loss():
    torch.manual_seed(0)
    student = Student("tiny3d", 4, 8)
    method = get_method("supervised", OPTIONS)
    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3)
    batch = make_batch()
    losses = []
    for _ in range(15):
        loss, _ = method.loss(student, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("arch", sorted(STUDENTS))
def test_every_student_trains_on_cpu(arch):
    torch.manual_seed(0)
    student = Student(arch, 3, 8).train()
    # two clips: s3d's last blocks see a 1×1×1 map of a 4-frame 32-pixel clip, and batch norm in
    # training needs more than one value a channel
    clips = torch.randint(0, 256, (2, 4, 32, 32, 3), dtype=torch.uint8)
    logits, emb, temporal = student.forward_temporal(clips)
    assert logits.shape == (2, 3) and emb.shape == (2, student.backbone.embed_dim)
    assert temporal.shape[0] == 2 and temporal.shape[2] == student.backbone.embed_dim
    student.eval()
    with torch.no_grad():  # the temporal features average, over time, to the embedding
        _, emb_eval, temporal_eval = student.forward_temporal(clips)
        assert torch.allclose(temporal_eval.mean(1), emb_eval, atol=1e-5)
        assert torch.allclose(student(clips)[1], emb_eval, atol=1e-6)
    student.train()
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([1, 0])) + student.project(temporal).pow(2).mean()
    loss.backward()
    grads = [p.grad for p in student.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


SEGMENTS = ClipSpec.from_options({"sampling": "segments", "frames": 4, "cache_frames": 8, "cache_size": [2, 2], "size": 2})


def _frame_numbered(lengths, h=2, w=2) -> ClipCache:
    """A cache whose every pixel of frame j of video i holds (i, j % 256, j // 256)."""
    frames = []
    for i, n in enumerate(lengths):
        clip = np.zeros((n, h, w, 3), dtype=np.uint8)
        clip[..., 0], clip[..., 1], clip[..., 2] = i, (np.arange(n) % 256)[:, None, None], (np.arange(n) // 256)[:, None, None]
        frames.append(clip)
    lengths = np.array(lengths)
    return ClipCache(np.concatenate(frames), np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)


def test_random_crops_match_a_shift_of_the_replicate_padded_frame_and_are_seeded():
    clips = torch.randint(0, 256, (6, 3, 12, 10, 3), dtype=torch.uint8)
    a = train_crops(clips, 10, torch.Generator().manual_seed(1), "random", padding=4)
    b = train_crops(clips, 10, torch.Generator().manual_seed(1), "random", padding=4)
    c = train_crops(clips, 10, torch.Generator().manual_seed(2), "random", padding=4)
    assert a.shape == (6, 3, 10, 10, 3) and a.dtype == torch.uint8 and torch.equal(a, b) and not torch.equal(a, c)
    padded = torch.nn.functional.pad(clips.permute(0, 1, 4, 2, 3).float().flatten(0, 1), (4, 4, 4, 4),
                                     mode="replicate").view(6, 3, 3, 20, 18).permute(0, 1, 3, 4, 2).to(torch.uint8)
    offsets = []
    for i in range(6):  # each crop is one window of its clip's padded frames, the same for every frame
        hits = [(y, x) for y in range(11) for x in range(9) if torch.equal(a[i], padded[i, :, y:y + 10, x:x + 10])]
        assert hits
        offsets.append(hits[0])
    assert len(set(offsets)) > 1  # training crops vary from clip to clip


@pytest.mark.parametrize("crop", ["random", "random_resized"])
def test_a_training_crop_is_one_draw_for_every_frame_and_flips_only_when_asked(crop):
    ramp = torch.arange(20, dtype=torch.float).mul(12).view(1, 1, 1, 20, 1).expand(16, 4, 20, 20, 3)
    ramp = ramp.to(torch.uint8).contiguous()
    kept = train_crops(ramp, 16, torch.Generator().manual_seed(0), crop, padding=0, scale=(0.3, 1.0))
    assert (kept == kept[:, :1]).all()
    assert (kept[..., 0, :, 0].float().diff(dim=-1) >= 0).all()  # left stays darker than right
    flipped = train_crops(ramp, 16, torch.Generator().manual_seed(0), crop, padding=0, scale=(0.3, 1.0), flip=True)
    decreasing = (flipped[:, 0, 0, :, 0].float().diff(dim=-1) <= 0).all(-1)
    assert 0 < int(decreasing.sum()) < 16


def test_test_crops_are_centred_and_three_crops_span_the_long_side():
    clips = torch.arange(128 * 171).view(1, 1, 128, 171, 1).expand(1, 2, 128, 171, 3)
    (centre,) = eval_views(clips, 112, 1)
    assert torch.equal(centre, clips[:, :, 8:120, 29:141])
    assert crop_boxes(128, 171, 112, 3) == [(8, 0), (8, 30), (8, 59)]
    assert crop_boxes(171, 128, 112, 3) == [(0, 8), (30, 8), (59, 8)]
    assert [v.shape for v in eval_views(clips, 112, 3)] == [(1, 2, 112, 112, 3)] * 3


def test_dense_clips_are_frames_stride_apart_from_a_seeded_random_start():
    """A 187-frame video at 16×4: the cache keeps every 4th frame; every clip is 16 frames 4 apart;
    start positions vary from step to step, and with the seed."""
    spec = ClipSpec.from_options({"sampling": "dense", "frames": 16, "stride": 4, "cache_size": [2, 2], "size": 2})
    kept = spec.cached_indices(187)
    assert kept.tolist() == list(range(0, 187, 4))
    cache = _frame_numbered([len(kept), 10])
    rows = torch.zeros(8, dtype=torch.long)

    def starts(seed, steps=6):
        g = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(steps):
            clip = take_clips(cache, rows, spec, g)
            position = clip[:, :, 0, 0, 1].long() + 256 * clip[:, :, 0, 0, 2].long()  # index into the kept frames
            video_frames = torch.from_numpy(kept)[position]
            assert (clip[:, :, 0, 0, 0] == 0).all()                      # the clip's own video
            assert (video_frames.diff(dim=1) == 4).all()                 # 16 frames, 4 apart
            assert (video_frames[:, -1] < 187).all()
            out.append(video_frames[:, 0].tolist())
        return out

    first = starts(0)
    assert len({s for step in first for s in step}) > 4 and first[0] != first[1]  # they vary step to step
    assert starts(0) == first and starts(1) != first                         # and with the seed
    # a video shorter than a clip is looped
    short = take_clips(cache, torch.tensor([1]), spec, torch.Generator().manual_seed(0))[0, :, 0, 0, 1].long()
    assert short.tolist() == [i % 10 for i in range(16)]
    # test clips: spread evenly, 16 frames 4 apart each
    clips = [spec.test_indices(187, c, 10) for c in range(10)]
    assert all((np.diff(c) == 4).all() and len(c) == 16 for c in clips)
    assert [c[0] for c in clips] == sorted(c[0] for c in clips) and clips[0][0] < clips[-1][0] <= 187 - 61


def test_take_clips_reads_the_sampled_frames():
    cache = _frame_numbered([8, 8, 8])
    rows = torch.tensor([2, 0, 2])
    a = take_clips(cache, rows, SEGMENTS, torch.Generator().manual_seed(0))
    assert a.shape == (3, 4, 2, 2, 3)
    assert (a[:, :, 0, 0, 0] == rows[:, None]).all()  # each clip's own frames
    assert ((a[:, :, 0, 0, 1].long() // 2) == torch.arange(4)).all()  # in order, one per segment


def test_strong_augment_is_consistent_over_frames_and_seeded():
    frame = torch.randint(0, 256, (5, 1, 16, 16, 3), dtype=torch.uint8)
    clips = frame.expand(5, 4, 16, 16, 3).contiguous()  # every frame of a clip the same
    a = strong_augment(clips, torch.Generator().manual_seed(0))
    b = strong_augment(clips, torch.Generator().manual_seed(0))
    c = strong_augment(clips, torch.Generator().manual_seed(1))
    assert a.shape == clips.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a == a[:, :1]).all()  # the same transform for every frame of a clip
    assert not torch.equal(a, clips)
    # without flip a horizontal ramp keeps its direction: left stays darker than right
    ramp = torch.arange(16, dtype=torch.float).mul(16).view(1, 1, 1, 16, 1).expand(8, 2, 16, 16, 3)
    out = strong_augment(ramp.to(torch.uint8).contiguous(), torch.Generator().manual_seed(2)).float()
    assert (out[..., :4, :].mean((1, 2, 3, 4)) <= out[..., -4:, :].mean((1, 2, 3, 4))).all()


def test_teacher_baselines_fit_heads(tiny_manifest, tiny_store, tmp_path):
    manifest, _ = tiny_manifest
    split = make_split(manifest, 1.0, seed=0)
    for name in ("clip_zeroshot", "clip_linear_probe"):
        ckpt = train(manifest, split, tiny_store, name, OPTIONS, tmp_path / f"{name}.pt", 0,
                     {"dataset": "synthetic", "fraction": 1.0})
        assert ckpt["kind"] == "teacher_head"
        assert ckpt["weight"].shape == tiny_store["text_embeddings"].shape


def test_trainer_batches_hold_what_each_method_asks_for(tiny_manifest, tiny_store):
    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    expect = {
        "supervised": ({}, {"x_l", "y_l", "t_l"}),
        "distill": ({}, {"x_l", "y_l", "t_l", "x_u", "t_u", "idx_u"}),
        "distill_frame_level": ({"distill": {"frame_level": True}},
                                {"x_l", "y_l", "t_l", "tf_l", "x_u", "t_u", "tf_u", "idx_u"}),
        "distill_pl_probe": ({"distill_pl": {"source": "teacher_probe"}},
                             {"x_l", "y_l", "t_l", "x_u", "t_u", "pl_u", "idx_u"}),
        "teacher_pl": ({}, {"x_l", "y_l", "t_l", "x_u", "t_u", "pl_u", "idx_u"}),
        "pseudo_label": ({}, {"x_l", "y_l", "t_l", "x_u", "t_u", "idx_u"}),
        "fixmatch": ({}, {"x_l", "y_l", "t_l", "x_u", "x_u_strong", "t_u", "idx_u"}),
        "distill_kd": ({}, {"x_l", "y_l", "t_l", "zs_l", "x_u", "t_u", "zs_u", "idx_u"}),
        "mean_teacher": ({}, {"x_l", "y_l", "t_l", "x_u", "x_u_strong", "t_u", "idx_u"}),
        "clip_finetune": ({}, {"x_l", "y_l", "t_l"}),
    }
    k = tiny_store["frame_features"].shape[1]
    for variant, (changes, keys) in expect.items():
        name = variant.split("_frame")[0].split("_probe")[0]
        trainer = Trainer(manifest, split, tiny_store, get_method(name, with_options(**changes)),
                          with_options(**changes), 0)
        batch = trainer.next_batch()
        assert set(batch) == keys, variant
        # the student's clips, or clip_finetune's own at the tiny teacher's input size (64)
        assert batch["x_l"].shape == ((4, 4, 64, 64, 3) if name == "clip_finetune" else (4, 4, 16, 16, 3))
        if "tf_u" in batch:
            assert batch["tf_u"].shape[1] == k
        if "pl_u" in batch:
            assert torch.allclose(batch["pl_u"].sum(1), torch.ones(4))
        if "zs_u" in batch:  # the teacher's zero-shot logits of exactly the batch's videos
            assert torch.allclose(batch["zs_u"], trainer.batches.unlabeled["zs_u"][batch["idx_u"]])


@pytest.mark.parametrize("name,changes", [
    ("pseudo_label", {}),
    ("teacher_pl", {"teacher_pl": {"source": "teacher_probe"}}),
    ("fixmatch", {}),
    ("distill", {"distill": {"frame_level": True}, "student": {"frames": 8, "cache_frames": 8}}),
    ("distill_pl", {"distill_pl": {"source": "teacher_probe"}}),
    ("distill_pl", {"distill_pl": {"source": "student"}}),
])
def test_new_methods_train_end_to_end(tiny_manifest, tiny_store, tmp_path, name, changes):
    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    ckpt = train(manifest, split, tiny_store, name, with_options(**changes), tmp_path / "m.pt", 0,
                 {"dataset": "synthetic", "fraction": 0.5})
    assert ckpt["meta"]["weights"] == "the final weights"
    curve = (tmp_path / "m.pt.curve.csv").read_text().splitlines()
    assert len(curve) == 1 + OPTIONS["train"]["steps"]


def test_ema_weights_are_the_evaluated_ones(tiny_manifest, tiny_store, tmp_path):
    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    run = lambda ema, out: train(manifest, split, tiny_store, "supervised", with_options(train={"ema": ema}),
                                 tmp_path / out, 0, {"dataset": "synthetic", "fraction": 0.5})
    plain, averaged = run(0.0, "plain.pt"), run(0.9, "ema.pt")
    assert "EMA" in averaged["meta"]["weights"] and "0.9" in averaged["meta"]["weights"]
    a, b = plain["state_dict"], averaged["state_dict"]
    assert set(a) == set(b)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].dtype.is_floating_point)
    assert torch.equal(a["backbone.features.0.1.num_batches_tracked"], b["backbone.features.0.1.num_batches_tracked"])


@pytest.mark.parametrize("name", ["supervised", "distill_pl"])
def test_same_seed_same_weights(tiny_manifest, tiny_store, tmp_path, name):
    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    run = lambda out, seed: train(manifest, split, tiny_store, name, copy.deepcopy(OPTIONS), out, seed,
                                  {"dataset": "synthetic", "fraction": 0.5})["state_dict"]
    a, b, c = run(tmp_path / "a.pt", 0), run(tmp_path / "b.pt", 0), run(tmp_path / "c.pt", 1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert (tmp_path / "a.pt.curve.csv").read_text().startswith("step,lr,loss")


@pytest.mark.parametrize("prefetch", ["on", "off", "auto"])
def test_bench_train_compares_model_only_and_real_data_path(tiny_manifest, tiny_store, prefetch):
    from svar.bench_train import bench_train

    manifest, _ = tiny_manifest
    r = bench_train(OPTIONS, manifest, make_split(manifest, 0.5, seed=0), tiny_store, steps=1, windows=2, warmup=1,
                    prefetch=prefetch)
    assert r["clips_per_step"] == 8 and len(r["model_rates"]) == len(r["real_rates"]) == 2
    assert r["model_clips_per_s"] > 0 and r["real_clips_per_s"] > 0 and r["ratio"] > 0
    # auto: what training does here (CPU, one thread: in line)
    assert r["prefetch"] is (prefetch == "on") and (r["cpu_ratio"] is None) is r["prefetch"]


def test_bench_train_without_a_benchmark_run_says_what_to_do(tmp_path, monkeypatch):
    from conftest import ROOT
    from svar.bench_train import main_bench_train

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="snakemake --cores 2"):
        main_bench_train([str(ROOT / "workflow" / "config" / "tiny.yaml")])
