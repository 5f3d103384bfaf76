"""The reviewer's baselines and analyses: distill_kd, mean_teacher, clip_finetune, temporal_probe,
FlexMatch's class-adaptive thresholds, and the pseudo-label diagnostics (which never feed a loss).
Their loss contracts are in test_training.py with every other method's."""

import collections
import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from test_method_definitions import fitted_student
from test_training import OPTIONS, make_batch, with_options

from svar.evaluate import test_logits as scored_logits
from svar.methods import FlexMatchThresholds, TemporalHead, get_method, head_logits, sigmoid_ramp
from svar.splits import make_split
from svar.teacher.store import video_features, zeroshot_logits
from svar.trainer import TrainingStopped, train

RUN = {"dataset": "synthetic", "fraction": 0.5}


def usb_flexmatch_masks(batches, n_unlabeled, num_classes, p_cutoff):
    """FlexMatch's masks written from USB: semilearn/algorithms/flexmatch/utils.py
    (FlexMatchThresholdingHook.update with thresh_warmup=True, and masking's convex mapping)."""
    selected_label = [-1] * n_unlabeled
    classwise_acc = [0.0] * num_classes
    masks = []
    for probs, idx in batches:
        max_probs, max_idx = probs.max(dim=-1)
        mask = max_probs.ge(p_cutoff * (torch.tensor([classwise_acc[i] for i in max_idx])
                                        / (2.0 - torch.tensor([classwise_acc[i] for i in max_idx]))))
        select = max_probs.ge(p_cutoff)
        for i, s in zip(idx.tolist(), select.tolist()):
            if s:
                selected_label[i] = int(max_idx[idx.tolist().index(i)])
        pseudo_counter = collections.Counter(selected_label)
        if max(pseudo_counter.values()) < n_unlabeled:
            for i in range(num_classes):
                classwise_acc[i] = pseudo_counter[i] / max(pseudo_counter.values())
        masks.append(mask.float())
    return masks


def test_flexmatch_thresholds_follow_usbs_hook():
    g = torch.Generator().manual_seed(0)
    n, classes = 12, 3
    batches = [(torch.softmax(4 * torch.randn(5, classes, generator=g), -1),
                torch.randperm(n, generator=g)[:5]) for _ in range(8)]
    ours = FlexMatchThresholds(0.8, n, classes)
    got = [ours.mask(probs, idx)[1] for probs, idx in batches]
    expected = usb_flexmatch_masks(batches, n, classes, 0.8)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert got[0].eq(1).all()  # every class's effect starts at 0: everything counts at first
    assert any(not m.eq(1).all() for m in got[1:])  # and the thresholds then rise


def test_flexmatch_gives_a_rarely_confident_class_a_lower_threshold():
    thresholds = FlexMatchThresholds(0.9, 10, 2)
    confident = torch.tensor([[0.95, 0.05]] * 6 + [[0.05, 0.95]])
    thresholds.mask(confident, torch.arange(7))
    # class 0 was confidently predicted 6 times, class 1 once: 0.7 passes class 1's bar, not class 0's
    _, mask = thresholds.mask(torch.tensor([[0.7, 0.3], [0.3, 0.7]]), torch.tensor([7, 8]))
    assert mask.tolist() == [0.0, 1.0]


def test_distill_kd_is_t_squared_kl_to_the_teachers_zero_shot_distribution():
    batch, student = make_batch(), fitted_student().eval()
    method = get_method("distill_kd", with_options(distill_kd={"temperature": 3.0, "weight": 0.5}))
    loss, logs = method.loss(student, batch)
    logits = student(torch.cat([batch["x_l"], batch["x_u"]]))[0]
    teacher = torch.cat([batch["zs_l"], batch["zs_u"]]).div(3.0).softmax(-1)
    kl = (teacher * (teacher.log() - logits.div(3.0).log_softmax(-1))).sum(-1).mean() * 9.0
    ce = F.cross_entropy(logits[:4], batch["y_l"])
    assert torch.allclose(loss, ce + 0.5 * kl, atol=1e-5)
    assert torch.equal(logs["pseudo_labels"][0], batch["zs_u"].argmax(1))


def test_mean_teachers_teacher_is_the_ema_of_the_student_and_its_weight_ramps_by_a_sigmoid(
        tiny_manifest, tiny_store, tmp_path):
    assert sigmoid_ramp(0, 10) == pytest.approx(torch.tensor(-5.0).exp().item())
    assert sigmoid_ramp(10, 10) == sigmoid_ramp(50, 10) == sigmoid_ramp(3, 0) == 1.0
    from svar.trainer import Trainer

    manifest, _ = tiny_manifest
    options = with_options(mean_teacher={"ema_decay": 0.5})
    trainer = Trainer(manifest, make_split(manifest, 0.5, seed=0), tiny_store, get_method("mean_teacher", options),
                      options, 0)
    teacher = trainer.method.teacher_model
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainer.step(trainer.next_batch(), 0)
    for name, p in trainer.student.named_parameters():
        assert torch.allclose(teacher.state_dict()[name], 0.5 * before[name] + 0.5 * p.detach()), name
        assert not teacher.state_dict()[name].requires_grad


@pytest.mark.parametrize("name,changes", [
    ("distill_kd", {}),
    ("mean_teacher", {}),
    ("fixmatch", {"fixmatch": {"threshold": 0.9, "threshold_mode": "flexmatch"}}),
    ("teacher_pl", {"teacher_pl": {"threshold": 0.3, "threshold_mode": "flexmatch"}}),
    ("distill_pl", {"distill_pl": {"threshold": 0.3, "threshold_mode": "flexmatch"}}),
    ("temporal_probe", {}),
    ("clip_finetune", {}),
])
def test_new_methods_train_and_score(tiny_manifest, tiny_store, tmp_path, name, changes):
    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    ckpt = train(manifest, split, tiny_store, name, with_options(**changes), tmp_path / "m.pt", 0, RUN)
    test = split[split["role"] == "test"]
    logits = scored_logits(ckpt, manifest, test, tiny_store, settings={"clips": 1, "crops": 1, "batch_size": 4,
                                                                     "device": "cpu"})
    assert logits.shape == (len(test), len(tiny_store["class_names"])) and torch.isfinite(logits).all()
    curve = pd.read_csv(tmp_path / "m.pt.curve.csv")
    steps = OPTIONS["temporal_probe" if name == "temporal_probe" else "train"]["steps"]
    assert len(curve) == steps
    table = pd.read_csv(tmp_path / "m.pt.pseudo_labels.csv")
    assert list(table.columns) == ["class", "seen", "used", "correct", "coverage", "accuracy"]
    if name in ("temporal_probe", "clip_finetune"):  # no unlabeled video: nothing to diagnose
        assert table.empty and "pl_accuracy" not in curve
    else:
        assert len(table) == len(tiny_store["class_names"]) and table["seen"].sum() > 0
        assert "pl_accuracy" in curve and "pl_mask" in curve


def test_pseudo_label_diagnostics_never_feed_the_loss(tiny_manifest, tiny_store, tmp_path):
    """The unlabeled videos' true labels changed: the same weights, other diagnostics."""
    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    relabeled = split.copy()
    unlabeled = relabeled["role"] == "unlabeled"
    relabeled.loc[unlabeled, "label"] = 0  # every unlabeled video said to be of the first class
    for name in ("teacher_pl", "fixmatch", "mean_teacher"):
        options = with_options(teacher_pl={"threshold": 0.2})
        a = train(manifest, split, tiny_store, name, copy.deepcopy(options), tmp_path / f"{name}_a.pt", 0, RUN)
        b = train(manifest, relabeled, tiny_store, name, copy.deepcopy(options), tmp_path / f"{name}_b.pt", 0, RUN)
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]), name
        ta = pd.read_csv(tmp_path / f"{name}_a.pt.pseudo_labels.csv")
        tb = pd.read_csv(tmp_path / f"{name}_b.pt.pseudo_labels.csv")
        assert ta["used"].sum() == tb["used"].sum()  # the same pseudo-labels were used...
        assert tb["seen"].iloc[1:].eq(0).all() and not ta["seen"].equals(tb["seen"])  # ...scored otherwise


def test_the_diagnostics_count_what_the_teacher_labels_right(tiny_manifest, tiny_store, tmp_path):
    """teacher_pl with threshold 0 uses the teacher's zero-shot label of every unlabeled clip: a
    class whose unlabeled videos the teacher labels all right counts every use correct, one it
    labels all wrong none."""
    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    train(manifest, split, tiny_store, "teacher_pl", with_options(), tmp_path / "m.pt", 0, RUN)
    table = pd.read_csv(tmp_path / "m.pt.pseudo_labels.csv").set_index("class")
    unlabeled = split[split["role"] == "unlabeled"]
    right = pd.Series(zeroshot_logits(tiny_store, video_features(tiny_store, unlabeled["video_id"])).argmax(1).numpy()
                      == unlabeled["label"].to_numpy()).groupby(unlabeled["label"].to_numpy())
    names = tiny_store["class_names"]
    assert (table["used"] == table["seen"]).all() and table["seen"].sum() == 4 * OPTIONS["train"]["steps"]
    for label, hits in right:
        row = table.loc[names[label]]
        if hits.all():
            assert row["correct"] == row["used"]
        elif not hits.any():
            assert row["correct"] == 0
    curve = pd.read_csv(tmp_path / "m.pt.curve.csv")
    assert curve["pl_mask"].eq(1).all() and curve["pl_accuracy"].between(0, 1).all()


@pytest.mark.parametrize("name,changes", [
    ("mean_teacher", {}),
    ("fixmatch", {"fixmatch": {"threshold": 0.9, "threshold_mode": "flexmatch"}}),
])
def test_a_resumed_run_with_method_state_ends_with_the_same_weights(tiny_manifest, tiny_store, tmp_path, name,
                                                                    changes):
    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    options = with_options(train={"steps": 4, "checkpoint_every": 2}, **changes)
    whole = train(manifest, split, tiny_store, name, copy.deepcopy(options), tmp_path / "whole.pt", 0, RUN)
    with pytest.raises(TrainingStopped):
        train(manifest, split, tiny_store, name, copy.deepcopy(options), tmp_path / "cut.pt", 0, RUN, stop_after=2)
    resumed = train(manifest, split, tiny_store, name, copy.deepcopy(options), tmp_path / "cut.pt", 0, RUN)
    assert all(torch.equal(whole["state_dict"][k], resumed["state_dict"][k]) for k in whole["state_dict"])
    assert (tmp_path / "whole.pt.pseudo_labels.csv").read_text() == (tmp_path / "cut.pt.pseudo_labels.csv").read_text()


def test_clip_finetune_starts_as_the_teachers_zero_shot_classifier(tiny_store):
    """Before a step, with the teacher's templates, its logits are the teacher's zero-shot logits
    of the clip's frames encoded as the feature store encodes them (each frame normalised,
    averaged, normalised), whichever towers it tunes."""
    from svar.teacher.video_classifier import clip_classifier

    for tune in ("both", "image", "text"):
        classifier = clip_classifier(tiny_store, tune, tiny_store["meta"]["templates"]).eval()
        assert_zero_shot(classifier, tiny_store)


def assert_zero_shot(classifier, tiny_store):
    from svar.teacher.weights import create_teacher

    teacher, pre, _ = create_teacher("svar-tiny-clip", None, torch.device("cpu"))  # the store's: random, seed 0
    clips = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, _ = classifier(clips)
        x = (clips.flatten(0, 1).permute(0, 3, 1, 2).float() / 255 - torch.tensor(pre["mean"]).view(1, 3, 1, 1)) \
            / torch.tensor(pre["std"]).view(1, 3, 1, 1)
        video = F.normalize(F.normalize(teacher.encode_image(x), dim=-1).view(2, 3, -1).mean(1), dim=-1)
    assert torch.allclose(logits, zeroshot_logits(tiny_store, video), atol=1e-4)


def test_temporal_probe_without_layers_starts_as_the_zero_shot_classifier(tiny_store):
    ids = tiny_store["video_ids"][:5]
    frames = tiny_store["frame_features"][:5].float()
    head = TemporalHead(frames.shape[2], frames.shape[1], len(tiny_store["class_names"]), layers=0, heads=1)
    with torch.no_grad():
        head.head.weight.copy_(tiny_store["logit_scale"] * tiny_store["text_embeddings"].float())
        head.head.bias.zero_()
    ckpt = {"kind": "teacher_temporal", "config": {"dim": frames.shape[2], "frames": frames.shape[1],
                                                   "num_classes": len(tiny_store["class_names"]), "layers": 0,
                                                   "heads": 1}, "state_dict": head.state_dict()}
    expected = zeroshot_logits(tiny_store, video_features(tiny_store, ids))
    assert torch.allclose(head_logits(ckpt, tiny_store, ids), expected, atol=1e-5)


def test_temporal_probe_heads_must_divide_the_feature_width(tiny_manifest, tiny_store, tmp_path):
    manifest, _ = tiny_manifest
    with pytest.raises(ValueError, match="temporal_probe.heads: 5 does not divide"):
        train(manifest, make_split(manifest, 0.5, seed=0), tiny_store, "temporal_probe",
              with_options(temporal_probe={"heads": 5}), tmp_path / "m.pt", 0, RUN)


def test_temporal_probe_learns_from_the_labeled_videos_frame_features_only(tiny_manifest, tiny_store):
    """Its head depends on the labeled videos' stored frame features and labels, and on nothing
    of the other videos (unlabeled, validation, test) nor on their labels."""
    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    labeled = split[split["role"] == "labeled"]
    method = get_method("temporal_probe", OPTIONS)
    fit = lambda store, rows=labeled: method.fit(store, rows, len(store["class_names"]), 0)[0]["state_dict"]  # noqa: E731
    base = fit(tiny_store)
    rows = [tiny_store["video_ids"].index(v) for v in labeled["video_id"]]
    others = [i for i in range(len(tiny_store["video_ids"])) if i not in rows]
    changed = {**tiny_store, "frame_features": tiny_store["frame_features"].clone()}
    changed["frame_features"][others] = -changed["frame_features"][others]
    assert all(torch.equal(base[k], v) for k, v in fit(changed).items())
    changed["frame_features"][rows] = -changed["frame_features"][rows]
    assert not all(torch.equal(base[k], v) for k, v in fit(changed).items())
    relabeled = labeled.assign(label=(labeled["label"] + 1) % len(tiny_store["class_names"]))
    assert not all(torch.equal(base[k], v) for k, v in fit(tiny_store, relabeled).items())
