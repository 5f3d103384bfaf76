"""Weights for a node without internet (svar.weights_files): every file a config needs is named
with its place, URL and published checksum (`svar fetch-weights --list`); `svar fetch-weights`
fetches them all as the rules do; every error about a missing or wrong file, in a job or in a
fetch that cannot reach the internet, names the config keys, the file's full path and the URL to
copy it from, at once."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch

from svar.cli import main
from svar.download import DownloadError
from svar.student_weights import build_student, weights_name, weights_url
from svar.students import STUDENTS
from svar.teacher.weights import create_teacher
from svar.fetch_weights import fetch_all, required
from svar.weights_files import student_receipt, teacher_receipt

CPU = torch.device("cpu")
SOURCES = ["teacher tag", "teacher hf-hub", "student kinetics400", "student imagenet", "student timm imagenet",
           "wrong checksum"]
TIMM_ARCH = "vit_b16_divided"  # the student whose imagenet weights are timm's, from the Hugging Face hub


def _refuse(*args, **kwargs):
    raise ConnectionRefusedError(111, "Connection refused (the test's network)")


@pytest.fixture
def offline_sockets(monkeypatch):
    """Every connection is refused at once, as on a compute node without internet; the offline
    switch is off, so only the refusal can tell svar it is offline."""
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _config(source: str, tmp_path: Path) -> dict:
    """The default config with this source's weights, its folders in tmp_path."""
    from svar.config import load_workflow_config

    config = load_workflow_config()
    config["teacher"]["cache_dir"] = str(tmp_path / "teacher-cache")
    config["student"]["weights_dir"] = str(tmp_path / "torchvision")
    if source == "teacher tag":
        config["teacher"].update(model="ViT-B-32", pretrained="openai")
    elif source == "teacher hf-hub":
        config["teacher"].update(model="hf-hub:someorg/tiny-clip", pretrained="none")
    else:
        config["teacher"].update(model="svar-tiny-clip", pretrained="none")
        pretrained = "imagenet" if source.endswith("imagenet") else "kinetics400"
        config["student"].update(arch=TIMM_ARCH if source == "student timm imagenet" else "r3d_18", pretrained=pretrained)
    return config


def _expected(source: str, tmp_path: Path) -> tuple[list[str], str, str]:
    """The keys, the file's full path and the URL the error must name, from the registries."""
    import open_clip
    from huggingface_hub import hf_hub_url

    if source == "teacher tag":
        repo = open_clip.get_pretrained_cfg("ViT-B-32", "openai")["hf_hub"].rstrip("/")
        path = tmp_path / "teacher-cache" / repo / "open_clip_model.safetensors"
        return ["teacher.pretrained", "teacher.cache_dir"], str(path), hf_hub_url(repo, path.name)
    if source == "teacher hf-hub":  # the config is the first file it lacks
        path = tmp_path / "teacher-cache" / "someorg/tiny-clip/open_clip_config.json"
        return ["teacher.model", "teacher.cache_dir"], str(path), hf_hub_url("someorg/tiny-clip", path.name)
    if source == "student timm imagenet":
        from timm.models import get_pretrained_cfg

        repo = get_pretrained_cfg(STUDENTS[TIMM_ARCH].timm_imagenet).hf_hub_id
        path = tmp_path / "torchvision" / repo / "model.safetensors"
        return ["student.pretrained", "student.weights_dir"], str(path), hf_hub_url(repo, path.name)
    pretrained = "imagenet" if source == "student imagenet" else "kinetics400"
    url = weights_url(weights_name("r3d_18", pretrained))
    return ["student.pretrained", "student.weights_dir"], str(tmp_path / "torchvision" / os.path.basename(url)), url


def _job(source: str, config: dict):
    """What a job does first with the config's weights, offline."""
    if source.startswith("teacher"):
        teacher = config["teacher"]
        create_teacher(teacher["model"], teacher["pretrained"], CPU, cache_dir=teacher["cache_dir"], offline=True)
    else:
        build_student(config["student"] | {"frames": 8, "size": 32}, 4, 8)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("where", ["job", "fetch"])
def test_every_offline_weights_error_names_key_file_and_url(source, where, tmp_path, offline_sockets):
    config = _config(source, tmp_path)
    keys, path, url = _expected(source, tmp_path)
    if source == "wrong checksum":  # a file copied by hand that is not torchvision's
        Path(path).parent.mkdir(parents=True)
        Path(path).write_bytes(b"an HTML error page saved under the weights' name")
    started = time.monotonic()
    with pytest.raises((FileNotFoundError, DownloadError, ValueError)) as error:
        _job(source, config) if where == "job" else fetch_all(config, str(tmp_path / "results"))
    took = time.monotonic() - started
    message = str(error.value)
    for text in [*keys, path, url]:
        assert text in message, f"{text!r} missing from: {message}"
    assert "archive" not in message
    assert took < 5, f"{took:.1f} s before saying so"  # no retries with back-off
    if source == "wrong checksum":
        sha256 = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        assert (f"does not match the published sha256 prefix of torchvision's r3d_18 Kinetics-400 weights "
                f"(R3D_18_Weights.KINETICS400_V1) (in student.weights_dir): expected "
                f"{os.path.basename(url).split('-')[1][:8]}…, got {sha256}") in message
        assert f"Copy it again from {url}" in message
    elif where == "fetch":
        assert "cannot download" in message and "cannot be reached" in message
    else:
        assert "never downloads" in message


def test_hf_hub_offline_says_so_without_trying(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 (svar's switch for a machine without internet): the fetch does not even
    try the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tried = []
    monkeypatch.setattr(socket.socket, "connect", lambda *a: tried.append(a) or _refuse())
    with pytest.raises(DownloadError, match=r"student.pretrained: cannot download .*HF_HUB_OFFLINE=1 is set.*"
                                            r"student.weights_dir.*copy https://download.pytorch.org/models/"):
        fetch_all(_config("student kinetics400", tmp_path), str(tmp_path / "results"))
    assert not tried


def test_fetch_weights_list_names_every_file_from_the_registries(tmp_path, capsys):
    """`svar fetch-weights --list`: each teacher's and the student's file, with its folder, URL and
    checksum as open_clip's and torchvision's registries publish them; without the network."""
    import open_clip

    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("teacher: {model: ViT-B-32, pretrained: openai, cache_dir: /shared/weights}\n"
                       "teachers: [{model: ViT-B-16, pretrained: laion2b_s34b_b88k}]\n"
                       "student: {arch: r3d_18, pretrained: kinetics400}\n")
    main(["fetch-weights", "--list", "--configfile", str(overlay)])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == 3
    for row, (model, tag) in zip(rows, [("ViT-B-32", "openai"), ("ViT-B-16", "laion2b_s34b_b88k")]):
        repo = open_clip.get_pretrained_cfg(model, tag)["hf_hub"].rstrip("/")
        assert f"`/shared/weights/{repo}` (`teacher.cache_dir`)" in row
        assert f"https://huggingface.co/{repo}/resolve/main/open_clip_model.safetensors" in row
    url = weights_url(weights_name("r3d_18", "kinetics400"))
    name = os.path.basename(url)
    assert f"`{name}`" in rows[2] and url in rows[2] and "`data/weights/torchvision` (`student.weights_dir`)" in rows[2]
    assert f"starts with `{name.rsplit('-', 1)[1].split('.')[0]}`" in rows[2]


def test_fetch_weights_writes_the_rules_receipts_and_keeps_placed_files(tmp_path, monkeypatch, offline_sockets):
    """Files placed by hand: `svar fetch-weights` verifies and keeps them, without the network, and
    writes the receipts rules teacher_weights and student_weights write, so Snakemake finds the
    downloads done; a hand-placed torchvision file whose name matches loads in training."""
    from torchvision.models.video import r3d_18

    from svar import student_weights

    config = _config("student kinetics400", tmp_path)
    config["teacher"].update(model="ViT-B-32", pretrained="openai")
    teacher_file = Path(_expected("teacher tag", tmp_path)[1])
    teacher_file.parent.mkdir(parents=True)
    teacher_file.write_bytes(b"stand-in for the Hub's file")
    torch.manual_seed(5)
    state = r3d_18().state_dict()
    staged = tmp_path / "staged.pth"
    torch.save(state, staged)
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()
    # torchvision's name carries the published file's digest: this test's file is published under its own
    monkeypatch.setattr(student_weights, "weights_url",
                        lambda name: f"https://download.pytorch.org/models/r3d_18-{digest[:8]}.pth")
    student_file = tmp_path / "torchvision" / f"r3d_18-{digest[:8]}.pth"
    student_file.parent.mkdir()
    os.replace(staged, student_file)
    assert [e.path for e in required(config)] == [teacher_file, student_file]
    monkeypatch.chdir(tmp_path)
    receipts = fetch_all(config)
    assert receipts == [teacher_receipt(config["teacher"]), student_receipt(config["student"])]
    assert receipts == ["results/teacher_weights/ViT-B-32__openai.json",
                        "results/student_weights/r3d_18__kinetics400.json"]
    teacher, student = (json.loads(Path(r).read_text()) for r in receipts)
    assert teacher["path"] == str(teacher_file)
    assert teacher["sha256"] == hashlib.sha256(teacher_file.read_bytes()).hexdigest()
    assert student["file"] == str(student_file) and student["sha256"] == digest
    built = build_student(config["student"] | {"frames": 8, "size": 32}, 4, 8)
    assert built.init == f"kinetics400: torchvision R3D_18_Weights.KINETICS400_V1 (sha256 {digest})"
    assert torch.equal(built.backbone.state_dict()["stem.0.weight"], state["stem.0.weight"])
