"""The methods as their papers and USB define them: FixMatch's loss against a reference written
from USB's formula, one forward pass (one batch-norm update) over all views, the 100% column
without unlabeled terms, the unlabeled-loss ramp, the optimiser's parameter groups, the
schedules, USB's EMA, frame-level distillation at the student's temporal resolution, and
RandAugment for video."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from test_training import OPTIONS, fitted_student_state, make_batch, with_options

from svar.clips.views import randaugment
from svar.methods import frame_distill_loss, get_method, unsup_ramp
from svar.splits import make_split
from svar.students import Student
from svar.trainer import EMA, Trainer, lr_at, parameter_groups, train


def fitted_student() -> Student:
    student = Student("tiny3d", 4, 8)
    student.load_state_dict(fitted_student_state())
    return student


def usb_fixmatch_loss(model, x_lb, y_lb, x_ulb_w, x_ulb_s, p_cutoff, lambda_u):
    """FixMatch's loss written from USB: semilearn/algorithms/fixmatch/fixmatch.py
    (FixMatch.train_step with use_cat=True, hard_label=True) and semilearn/algorithms/utils/loss.py
    (ce_loss; consistency_loss 'ce' with a mask: the masked per-sample loss, then .mean())."""
    num_lb = y_lb.shape[0]
    logits = model(torch.cat((x_lb, x_ulb_w, x_ulb_s)))[0]
    logits_x_lb = logits[:num_lb]
    logits_x_ulb_w, logits_x_ulb_s = logits[num_lb:].chunk(2)
    sup_loss = F.cross_entropy(logits_x_lb, y_lb, reduction="mean")
    probs_x_ulb_w = torch.softmax(logits_x_ulb_w.detach(), dim=-1)   # compute_prob
    max_probs, _ = torch.max(probs_x_ulb_w, dim=-1)                  # FixedThresholdingHook
    mask = max_probs.ge(p_cutoff).to(max_probs.dtype)
    pseudo_label = torch.argmax(probs_x_ulb_w, dim=-1)               # PseudoLabelingHook, hard labels
    unsup_loss = (F.cross_entropy(logits_x_ulb_s, pseudo_label, reduction="none") * mask).mean()
    return sup_loss + lambda_u * unsup_loss, mask


@pytest.mark.parametrize("quantile", [0.0, 0.5, 1.01])
def test_fixmatch_loss_and_gradient_equal_usbs_formula(quantile):
    batch = make_batch()
    probe = fitted_student().train()
    with torch.no_grad():  # a threshold that keeps none, about half, or all of the weak views
        conf = probe(torch.cat([batch["x_l"], batch["x_u"], batch["x_u_strong"]]))[0][4:8].softmax(-1).amax(-1)
    tau = 1.01 if quantile > 1 else float(torch.quantile(conf, quantile))
    method = get_method("fixmatch", with_options(fixmatch={"threshold": tau, "weight": 0.7}))
    ours, reference = fitted_student().train(), fitted_student().train()  # train mode: batch statistics
    loss, logs = method.loss(ours, batch)
    expected, mask = usb_fixmatch_loss(reference, batch["x_l"], batch["y_l"], batch["x_u"], batch["x_u_strong"],
                                       tau, 0.7)
    assert torch.allclose(loss, expected, rtol=1e-6, atol=1e-7)
    assert float(logs["pl_mask"]) == pytest.approx(float(mask.mean()))
    loss.backward()
    expected.backward()
    for (name, a), b in zip(ours.named_parameters(), reference.parameters()):
        if name.startswith("project."):  # the distillation projection: no part of FixMatch
            assert a.grad is None and b.grad is None
        else:
            assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-7), name
    if 0 < quantile < 1:
        assert 0 < float(mask.mean()) < 1


def test_one_fixmatch_step_updates_batch_norm_statistics_once_with_every_view(tiny_manifest, tiny_store):
    manifest, _ = tiny_manifest
    options = with_options(train={"batch_size": 2, "unlabeled_ratio": 3})
    trainer = Trainer(manifest, make_split(manifest, 0.5, seed=0), tiny_store, get_method("fixmatch", options),
                      options, 0)
    bn = next(m for m in trainer.student.modules() if isinstance(m, torch.nn.BatchNorm3d))
    seen = []
    bn.register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    batch = trainer.next_batch()
    assert batch["x_u"].shape[0] == batch["x_u_strong"].shape[0] == 6
    before = bn.running_mean.clone()
    trainer.step(batch, 0)
    assert len(seen) == 1 and seen[0].shape[0] == 2 + 6 + 6  # labeled, weak and strong in one pass
    assert int(bn.num_batches_tracked) == 1
    expected = (1 - bn.momentum) * before + bn.momentum * seen[0].float().mean(dim=(0, 2, 3, 4))
    assert torch.allclose(bn.running_mean, expected, atol=1e-5)


def labeled_only(batch: dict) -> dict:
    """The batch of a split with no unlabeled videos (fraction 1)."""
    return {k: batch[k] for k in ("x_l", "y_l", "t_l", "tf_l")}


@pytest.mark.parametrize("name,same_as,changes", [
    ("distill_pl", "distill", {}),
    ("distill_pl", "distill", {"distill_pl": {"source": "student"}}),
    ("distill_pl", "distill", {"distill": {"frame_level": True}}),
    ("teacher_pl", "supervised", {}),
    ("pseudo_label", "supervised", {}),
    ("fixmatch", "supervised", {}),
])
def test_at_fraction_1_no_unlabeled_term_is_added(name, same_as, changes):
    batch = labeled_only(make_batch())
    options = with_options(**changes)
    student = fitted_student().eval()
    loss = get_method(name, options).loss(student, batch, 0)[0]
    assert torch.equal(loss, get_method(same_as, options).loss(student, batch, 0)[0])


def test_at_fraction_1_teacher_pl_trains_exactly_as_supervised(tiny_manifest, tiny_store, tmp_path):
    manifest, _ = tiny_manifest
    split = make_split(manifest, 1.0, seed=0)
    assert not (split["role"] == "unlabeled").any()
    runs = {name: train(manifest, split, tiny_store, name, copy.deepcopy(OPTIONS), tmp_path / f"{name}.pt", 0,
                        {"dataset": "synthetic", "fraction": 1.0})["state_dict"]
            for name in ("supervised", "teacher_pl", "fixmatch")}
    for name in ("teacher_pl", "fixmatch"):
        assert all(torch.equal(runs["supervised"][k], runs[name][k]) for k in runs[name]), name
    trainer = Trainer(manifest, split, tiny_store, get_method("fixmatch", OPTIONS), OPTIONS, 0)
    assert set(trainer.next_batch()) == {"x_l", "y_l", "t_l"}


def test_the_unlabeled_weight_ramps_up_linearly():
    assert [unsup_ramp(s, 10) for s in (0, 5, 10, 50)] == [0.0, 0.5, 1.0, 1.0]
    assert unsup_ramp(0, 0) == 1.0
    batch, student = make_batch(), fitted_student().eval()
    supervised = get_method("supervised", OPTIONS).loss(student, batch)[0]
    for name in ("teacher_pl", "pseudo_label", "fixmatch", "distill_pl"):
        ramped = get_method(name, with_options(**{name: {"unsup_warmup": 10}}))
        full = get_method(name, OPTIONS)
        logs = full.loss(student, batch, 0)[1]
        at = lambda step: ramped.loss(student, batch, step)[0]  # noqa: E731
        expected = full.loss(student, batch, 0)[0] - 0.5 * logs["pl"]
        assert torch.allclose(at(5), expected, atol=1e-6), name
        assert torch.equal(at(10), full.loss(student, batch, 0)[0]), name
        if name != "distill_pl":
            assert torch.allclose(at(0), supervised, atol=1e-6), name


def test_norm_parameters_and_biases_get_no_weight_decay():
    student = Student("tiny3d", 4, 8)
    decay, no_decay = parameter_groups(student, 0.05)
    names = {id(p): n for n, p in student.named_parameters()}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("weight") and p.ndim > 1 for p in decay["params"])
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert "head.bias" in skipped and "backbone.features.0.1.weight" in skipped  # a batch-norm scale
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(student.parameters()))


def test_schedules():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(10, 100, 10, 1.0, "cosine") == pytest.approx(1.0)
    assert lr_at(100, 100, 10, 1.0, "cosine") == pytest.approx(0.0, abs=1e-12)
    # USB's get_cosine_schedule_with_warmup, num_cycles 7/16: cos(7π/16) of the peak at the end
    assert lr_at(100, 100, 0, 0.03, "usb_cosine") == pytest.approx(0.03 * math.cos(7 * math.pi / 16))
    assert lr_at(50, 100, 0, 0.03, "usb_cosine") == pytest.approx(0.03 * math.cos(7 * math.pi / 32))
    with pytest.raises(ValueError, match="train.schedule"):
        lr_at(50, 100, 0, 0.03, "step")


def test_ema_averages_parameters_with_a_constant_decay_and_copies_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    ema = EMA(model, 0.9)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model(torch.randn(8, 3))  # batch-norm statistics move
    ema.update(model)
    for name, p in model.named_parameters():
        assert torch.allclose(ema.state[name], 0.9 * start[name] + 0.1 * p)
    for name, b in model.named_buffers():
        assert torch.equal(ema.state[name], b)


def test_frame_distillation_pools_the_teachers_frames_to_the_students_resolution():
    torch.manual_seed(0)
    student = Student("tiny3d", 4, 8)
    temporal = torch.randn(2, 2, student.backbone.embed_dim)  # T' = 2
    frames = F.normalize(torch.randn(2, 8, 8), dim=-1)       # k = 8 teacher frames
    pooled = F.normalize(torch.stack([frames[:, :4].mean(1), frames[:, 4:].mean(1)], 1), dim=-1)
    expected = (1 - F.cosine_similarity(student.project(temporal), pooled, dim=-1)).mean()
    assert torch.allclose(frame_distill_loss(student, temporal, frames, "cosine"), expected)
    # a student with more positions than the teacher has frames is pooled to the teacher's
    more = torch.randn(2, 4, student.backbone.embed_dim)
    two = frames[:, :2]
    halves = torch.stack([more[:, :2].mean(1), more[:, 2:].mean(1)], 1)
    assert torch.allclose(frame_distill_loss(student, more, two, "cosine"),
                          (1 - F.cosine_similarity(student.project(halves), two, dim=-1)).mean())
    with pytest.raises(ValueError, match="distill.frame_level.*student.frames"):
        frame_distill_loss(student, temporal[:, :1], frames, "cosine")


def test_a_student_of_one_temporal_position_refuses_frame_distillation():
    batch = make_batch()
    batch = {**batch, "x_l": batch["x_l"][:, :4], "x_u": batch["x_u"][:, :4]}  # tiny3d: 4 frames -> T' = 1
    method = get_method("distill", with_options(distill={"frame_level": True}))
    with pytest.raises(ValueError, match="1 temporal position"):
        method.loss(Student("tiny3d", 4, 8), batch)


def test_randaugment_is_one_draw_a_clip_seeded_and_off_at_zero_ops():
    g = torch.Generator().manual_seed(0)
    frame = torch.randint(0, 256, (4, 1, 24, 24, 3), dtype=torch.uint8, generator=g)
    clips = frame.repeat(1, 5, 1, 1, 1)  # every frame of a clip the same image
    a = randaugment(clips, torch.Generator().manual_seed(1), 2, 9)
    assert a.shape == clips.shape and a.dtype == torch.uint8
    assert all(torch.equal(a[i, t], a[i, 0]) for i in range(4) for t in range(5))  # one draw for all frames
    assert not torch.equal(a, clips)
    assert torch.equal(a, randaugment(clips, torch.Generator().manual_seed(1), 2, 9))
    assert not torch.equal(a, randaugment(clips, torch.Generator().manual_seed(2), 2, 9))
    state = torch.get_rng_state()
    randaugment(clips, torch.Generator().manual_seed(1), 2, 9)
    assert torch.equal(torch.get_rng_state(), state)  # torch's own generator is left as it was
    g0 = torch.Generator().manual_seed(3)
    assert torch.equal(randaugment(clips, g0, 0, 9), clips)
    assert torch.equal(g0.get_state(), torch.Generator().manual_seed(3).get_state())
