"""The trainer and the methods: losses that depend on what they should, steps that learn,
the same seed giving the same weights."""

import copy

import pytest
import torch

from svar.methods import METHODS, get_method
from svar.splits import make_split
from svar.students import Student
from svar.trainer import train

OPTIONS = {
    "student": {"arch": "tiny3d", "frames": 4, "size": 16, "cache_frames": 4},
    "train": {"steps": 4, "batch_size": 4, "unlabeled_ratio": 1, "optimizer": "adamw", "lr": 0.003,
              "weight_decay": 0.05, "warmup_steps": 1, "device": "cpu", "flip": False},
    "distill": {"weight": 1.0, "loss": "cosine"},
    "pseudo_label": {"source": "teacher_zeroshot", "threshold": 0.0, "weight": 1.0},
    "linear_probe": {"l2": 0.001, "max_iter": 20},
    "evaluate": {"clips": 1},
}
STUDENT_METHODS = sorted(name for name, cls in METHODS.items() if cls.trains_student)


def make_batch(seed=0, classes=4, dim=8):
    g = torch.Generator().manual_seed(seed)
    clip = lambda n: torch.randint(0, 256, (n, 4, 16, 16, 3), dtype=torch.uint8, generator=g)
    feat = lambda n: torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=-1)
    return {"x_l": clip(4), "y_l": torch.arange(4) % classes, "t_l": feat(4),
            "x_u": clip(4), "t_u": feat(4), "pl_u": torch.softmax(3 * torch.randn(4, classes, generator=g), -1)}


def loss_of(method, batch, seed=0):
    torch.manual_seed(seed)
    student = Student("tiny3d", 4, 8).eval()  # eval: batch statistics must not blur the comparison
    return method.loss(student, batch)[0].item()


@pytest.mark.parametrize("name", STUDENT_METHODS)
def test_loss_is_finite_and_depends_on_the_right_inputs(name):
    method = get_method(name, OPTIONS)
    batch = make_batch()
    base = loss_of(method, batch)
    assert torch.isfinite(torch.tensor(base))
    other_teacher = {**batch, "t_l": -batch["t_l"], "t_u": -batch["t_u"]}
    other_pseudo = {**batch, "pl_u": batch["pl_u"].roll(1, dims=1)}
    other_labels = {**batch, "y_l": (batch["y_l"] + 1) % 4}
    assert loss_of(method, other_labels) != base  # every student method uses the labels
    if name == "supervised":
        assert loss_of(method, other_teacher) == base
        assert loss_of(method, other_pseudo) == base
    if name in ("distill", "distill_pl"):
        assert loss_of(method, other_teacher) != base
    if name == "distill":
        assert loss_of(method, other_pseudo) == base
    if name == "distill_pl":
        assert loss_of(method, other_pseudo) != base


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


def test_teacher_baselines_fit_heads(tiny_manifest, tiny_store, tmp_path):
    manifest, _ = tiny_manifest
    split = make_split(manifest, 1.0, seed=0)
    for name in ("clip_zeroshot", "clip_linear_probe"):
        ckpt = train(manifest, split, tiny_store, name, OPTIONS, tmp_path / f"{name}.pt", 0,
                     {"dataset": "synthetic", "fraction": 1.0})
        assert ckpt["kind"] == "teacher_head"
        assert ckpt["weight"].shape == tiny_store["text_embeddings"].shape


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
