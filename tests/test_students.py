"""The students and their initial weights: every registered arch runs forward and backward through
one contract; student.pretrained loads a state-dict file, torchvision's Kinetics-400 weights from
student.weights_dir without the network, or ImageNet's ResNet-18 inflated; pickled code is refused
without running; rule student_weights fetches and verifies torchvision's files (a loopback server
stands in for download.pytorch.org)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TINY
from svar import student_weights
from svar.cli import main
from svar.config import WORKFLOW_CONFIG, ConfigError, merge, read_yaml
from svar.config_checks import check
from svar.methods import METHODS
from svar.student_weights import build_student, inflate, student_problems
from svar.students import STUDENTS, Student, torchvision_weights
from test_download import host  # noqa: F401  (the loopback HTTP server fixture)


def _sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _options(arch, pretrained="none", weights_dir="unused", frames=8, size=32):
    return {"arch": arch, "pretrained": str(pretrained), "weights_dir": str(weights_dir), "frames": frames,
            "size": size}


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection fails the test: weights must come from files."""

    def refuse(*args, **kwargs):
        raise AssertionError("a student's weights were looked for on the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _cache(monkeypatch, weights_dir, state: dict, stem: str):
    """state saved into weights_dir under a torchvision-style name, NAME-<sha256 prefix>.pth, and
    the weights' URL pointed at it (the real URLs name the real files' digests)."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    staged = weights_dir / "staged.pth"
    torch.save(state, staged)
    path = weights_dir / f"{stem}-{_sha256(staged)[:8]}.pth"
    os.replace(staged, path)
    monkeypatch.setattr(student_weights, "weights_url", lambda name: f"https://download.pytorch.org/models/{path.name}")
    return path


# --------------------------------------------------------------------------- the architectures


@pytest.mark.parametrize("arch", list(STUDENTS))
def test_every_student_runs_forward_and_backward_through_one_contract(arch):
    torch.manual_seed(0)
    spec = STUDENTS[arch]
    student = Student(arch, 5, 16).train()
    clips = torch.randint(0, 256, (2, 8, 32, 32, 3), dtype=torch.uint8)
    fmap = student.feature_map(clips)
    assert fmap.dim() == 5 and fmap.shape[:2] == (2, spec.embed_dim)  # time kept: [B, E, T', H', W']
    logits, emb, temporal = student.forward_temporal(clips)
    assert logits.shape == (2, 5) and emb.shape == (2, spec.embed_dim)
    assert temporal.shape == (2, fmap.shape[2], spec.embed_dim)
    loss = logits.logsumexp(1).mean() + student.project(temporal).pow(2).mean()
    loss.backward()
    backbone = list(student.backbone.parameters())
    assert backbone and all(p.grad is not None and torch.isfinite(p.grad).all() for p in backbone)
    assert any(p.grad.abs().sum() > 0 for p in backbone)


def test_registry_data_is_torchvisions():
    """Native input and normalisation come from torchvision's weights: the transform's crop and
    its mean/std where it has them (MViT's and Swin's differ from the Kinetics defaults)."""
    for arch, spec in STUDENTS.items():
        if spec.kinetics400 is None:
            continue
        weights = torchvision_weights(spec.kinetics400)
        frames, size = spec.native_input
        assert f"clip_len={frames}" in weights.meta["_docs"] and size == weights.transforms.keywords["crop_size"][0]
        mean, std = spec.normalisation()
        assert mean == weights.transforms.keywords.get("mean", (0.43216, 0.394666, 0.37645))
    assert STUDENTS["swin3d_t"].normalisation()[0] == (0.485, 0.456, 0.406)
    assert STUDENTS["mvit_v2_s"].normalisation()[1] == (0.225, 0.225, 0.225)
    assert STUDENTS["r3d_18"].normalisation("imagenet") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


# --------------------------------------------------------------------------- student.pretrained: a file


def test_a_state_dict_file_initialises_the_backbone(tmp_path):
    torch.manual_seed(1)
    source = Student("tiny3d", 3, 8)
    source.set_normalisation((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    plain, whole = tmp_path / "backbone.pt", tmp_path / "model.pt"
    torch.save(source.backbone.state_dict(), plain)
    torch.save({"kind": "student", "state_dict": source.state_dict()}, whole)  # a svar model.pt
    torch.manual_seed(2)
    student = build_student(_options("tiny3d", plain), 4, 8)
    assert _equal_states(student.backbone.state_dict(), source.backbone.state_dict())
    assert student.init == f"file {plain} (sha256 {_sha256(plain)})"
    again = build_student(_options("tiny3d", whole), 4, 8)
    assert _equal_states(again.backbone.state_dict(), source.backbone.state_dict())
    assert torch.equal(again.mean, source.mean) and torch.equal(again.std, source.std)
    assert build_student(_options("tiny3d"), 4, 8).init == "scratch"


def test_a_state_dict_of_another_arch_is_refused_naming_the_file_and_keys(tmp_path):
    from svar.students import Tiny3D

    path = tmp_path / "narrow.pt"
    torch.save(Tiny3D(width=8).state_dict(), path)
    with pytest.raises(ValueError, match=r"narrow\.pt does not fit") as err:
        build_student(_options("tiny3d", path), 3, 8)
    assert "features.0.0.weight (8, 3, 3, 3, 3) where Tiny3D has (16, 3, 3, 3, 3)" in str(err.value)


class _Payload:
    """Unpickling it would create a file: the code a malicious checkpoint would run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_file_carrying_pickled_code_is_refused_and_its_code_never_runs(tmp_path):
    marker, path = tmp_path / "code-ran", tmp_path / "evil.pt"
    torch.save({"features.0.0.weight": torch.zeros(1), "payload": _Payload(marker)}, path)
    with pytest.raises(ValueError, match=r"evil\.pt holds objects that are not tensors.*never runs code"):
        build_student(_options("tiny3d", path), 3, 8)
    assert not marker.exists()


def test_a_run_records_how_its_student_started_and_evaluation_rebuilds_it(tiny_manifest, tiny_store, tmp_path):
    from svar.trainer import options_for
    from svar.splits import make_split
    from svar.trainer import train

    manifest, _ = tiny_manifest
    torch.manual_seed(5)
    start = tmp_path / "start.pt"
    torch.save(Student("tiny3d", 3, 8).backbone.state_dict(), start)
    overlay = {"student": {"arch": "tiny3d", "pretrained": str(start), "frames": 4, "size": 16,
                           "cache_size": [16, 16], "cache_frames": 4},
               "train": {"steps": 2, "batch_size": 4, "device": "cpu", "val_every": 0}}
    options = options_for("supervised", check(merge(read_yaml(WORKFLOW_CONFIG), overlay), local=False))
    options["student"]["pretrained"] = str(start)
    ckpt = train(manifest, make_split(manifest, 0.5, seed=0), tiny_store, "supervised", options,
                 tmp_path / "model.pt", 0, {"dataset": "synthetic", "fraction": 0.5})
    assert ckpt["meta"]["student_init"] == f"file {start} (sha256 {_sha256(start)})"
    rebuilt = Student(ckpt["arch"], ckpt["num_classes"], ckpt["teacher_dim"])  # as evaluation does
    rebuilt.load_state_dict(ckpt["state_dict"])


# --------------------------------------------------------------------------- torchvision's weights


def test_kinetics400_weights_load_from_weights_dir_without_the_network(tmp_path, monkeypatch, no_network):
    from torchvision.models import video

    torch.manual_seed(3)
    published = video.s3d().state_dict()  # torchvision's own layout, classifier included
    path = _cache(monkeypatch, tmp_path / "weights", published, "s3d")
    student = build_student(_options("s3d", "kinetics400", tmp_path / "weights"), 4, 8)
    backbone = {k: v for k, v in published.items() if not k.startswith("classifier.")}
    assert _equal_states(student.backbone.state_dict(), backbone)
    net = video.s3d().eval()
    net.load_state_dict(published)
    student.eval()
    with torch.no_grad():  # torchvision's features where they run; a 4-frame clip, too short for them, runs too
        x = torch.randn(1, 3, 8, 32, 32)
        assert torch.equal(student.backbone.forward_features(x), net.features(x))
        assert student.feature_map(torch.zeros(1, 4, 16, 16, 3, dtype=torch.uint8)).shape == (1, 1024, 1, 1, 1)
    assert student.init == f"kinetics400: torchvision S3D_Weights.KINETICS400_V1 (sha256 {_sha256(path)})"
    # a wrong or missing file: tests/test_weights_files.py, for every source of weights


def test_imagenet_inflation_gives_a_static_clip_the_2d_response(tmp_path, monkeypatch, no_network):
    from torchvision.models import resnet18

    torch.manual_seed(4)
    net2d = resnet18().eval()
    _cache(monkeypatch, tmp_path / "weights", net2d.state_dict(), "resnet18")
    student = build_student(_options("r3d_18", "imagenet", tmp_path / "weights"), 4, 8).eval()
    assert student.init.startswith("imagenet: torchvision ResNet18_Weights.IMAGENET1K_V1 inflated into r3d_18")
    assert torch.allclose(student.mean.flatten(), torch.tensor((0.485, 0.456, 0.406)))
    image = torch.randn(2, 3, 32, 32)
    clip = image.unsqueeze(2).expand(-1, -1, 6, -1, -1)  # six frames of the same image
    with torch.no_grad():
        stem3d = student.backbone.stem(clip)  # conv 3×7×7, BN, ReLU
        stem2d = net2d.relu(net2d.bn1(net2d.conv1(image)))
    # away from the clip's ends (zero padding in time), every frame's response is the image's
    for t in range(1, 5):
        assert torch.allclose(stem3d[:, :, t], stem2d, atol=1e-5)
    # mc3_18: a 3×3×3 first stage, 1×3×3 kernels after it, all from the same 2D kernels
    mc3 = Student("mc3_18", 4, 8).backbone
    state = inflate(net2d.state_dict(), mc3)
    assert torch.allclose(state["layer2.0.conv1.0.weight"][:, :, 0], net2d.state_dict()["layer2.0.conv1.weight"])
    assert torch.allclose(state["layer1.0.conv1.0.weight"].sum(2), net2d.state_dict()["layer1.0.conv1.weight"])


def test_weights_that_do_not_fit_the_arch_are_a_config_error():
    def problems(arch, pretrained):
        return student_problems({"student": {"arch": arch, "pretrained": pretrained}})

    for arch in ("r2plus1d_18", "s3d", "mvit_v2_s", "swin3d_t", "tiny3d"):
        assert problems(arch, "imagenet") and "do not map" in problems(arch, "imagenet")[0]
    assert "no Kinetics-400 weights for tiny3d" in problems("tiny3d", "kinetics400")[0]
    assert "neither none, kinetics400, imagenet nor an existing state-dict file" in problems("r3d_18", "kinetcs")[0]
    assert not problems("mc3_18", "imagenet") and not problems("swin3d_t", "kinetics400")
    with pytest.raises(ValueError, match="do not map"):
        build_student(_options("r2plus1d_18", "imagenet"), 3, 8)
    with pytest.raises(ConfigError, match=r"student.pretrained: imagenet inflates"):
        overlay = {"student": {"arch": "swin3d_t", "pretrained": "imagenet"}}
        check(merge(read_yaml(WORKFLOW_CONFIG), overlay), local=False)


# --------------------------------------------------------------------------- rule student_weights


def test_student_weights_fetches_verifies_and_writes_a_receipt(host, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # this machine is online: to the loopback server
    data = b"torchvision's published weights, as far as this test is concerned"
    digest = hashlib.sha256(data).hexdigest()
    url = host.serve(f"/models/r3d_18-{digest[:8]}.pth", data)
    monkeypatch.setattr(student_weights, "weights_url", lambda name: url)
    weights_dir, receipt = tmp_path / "weights", tmp_path / "receipt.json"
    args = ["student-weights", "--arch", "r3d_18", "--pretrained", "kinetics400", "--weights-dir", str(weights_dir)]
    main([*args, "--out", str(receipt)])
    path = weights_dir / f"r3d_18-{digest[:8]}.pth"
    assert path.read_bytes() == data
    assert json.loads(receipt.read_text()) == {
        "arch": "r3d_18", "pretrained": "kinetics400", "weights": "R3D_18_Weights.KINETICS400_V1", "url": url,
        "file": str(path), "bytes": len(data), "sha256": digest}
    main([*args, "--out", str(tmp_path / "again.json")])  # already there: verified, not fetched again
    assert len(host.requests) == 1

    wrong = host.serve("/models/r3d_18-deadbeef.pth", data)
    monkeypatch.setattr(student_weights, "weights_url", lambda name: wrong)
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--out", str(tmp_path / "wrong.json")])
    assert exit_.value.code == 2
    assert f"sha256 is {digest}, expected deadbeef" in capsys.readouterr().err
    assert not (weights_dir / "r3d_18-deadbeef.pth").exists() and not (tmp_path / "wrong.json").exists()


def test_the_workflow_fetches_torchvisions_weights_before_training(tmp_path):
    overlay = tmp_path / "kinetics.yaml"
    overlay.write_text("student: {arch: r3d_18, pretrained: kinetics400}\n")
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                             str(tmp_path), "-n", "--cores", "1", "--configfile", str(TINY), str(overlay)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule student_weights:\n    output: results/student_weights/r3d_18__kinetics400.json" in result.stdout
    trains = [block for block in result.stdout.split("\nrule ") if block.startswith("train:")]
    assert trains
    for block in trains:  # every student run waits for the weights; a teacher-only baseline needs none
        method = re.search(r"method=(\w+)", block).group(1)
        assert ("results/student_weights/r3d_18__kinetics400.json" in block) == METHODS[method].trains_student
