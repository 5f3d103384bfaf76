"""The ViT-B/16 student with divided space-time attention (vit_b16_divided, svar.students_vit):
it trains through both attentions, starts from timm's ImageNet ViT-B/16 read from
student.weights_dir without the network and then gives a static clip the 2D model's features,
names the missing file and the command that fetches it, and rule student_weights fetches the
file from the Hugging Face hub (a patched hub client stands in for it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from svar.cli import main
from svar.student_weights import build_student, student_problems
from svar.students import STUDENTS, Student
from svar.students_vit import IMAGENET_TAG, TIMM_MODEL
from test_students import _options, _sha256, no_network  # noqa: F401  (no_network: a fixture)

ARCH = "vit_b16_divided"
# where svar expects timm's ImageNet ViT-B/16 in student.weights_dir: its Hugging Face repo's file
HUB_REPO = f"timm/{TIMM_MODEL}.{IMAGENET_TAG}"
FILE = f"{HUB_REPO}/model.safetensors"


def _image_vit():
    """timm's 2D ViT-B/16 with random weights, resampling its position embedding to the input's
    patch grid as the video student does."""
    import timm

    return timm.create_model(TIMM_MODEL, pretrained=False, dynamic_img_size=True).eval()


def test_the_anchors_vit_is_registered_as_timms_vit_b16():
    spec = STUDENTS[ARCH]
    assert spec.embed_dim == 768 and spec.timm_imagenet == "vit_base_patch16_224.orig_in21k_ft_in1k"
    vit = spec.make().vit
    assert (vit.patch_embed.patch_size, vit.embed_dim, len(vit.blocks), vit.blocks[0].attn.num_heads) == \
        ((16, 16), 768, 12, 12)
    # the weights' own normalisation, whatever the student starts from
    assert spec.normalisation() == spec.normalisation("imagenet") == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert not student_problems({"student": {"arch": ARCH, "pretrained": "imagenet"}})
    assert "no Kinetics-400 weights for vit_b16_divided" in \
        student_problems({"student": {"arch": ARCH, "pretrained": "kinetics400"}})[0]


def test_gradients_reach_the_temporal_and_the_spatial_attention():
    torch.manual_seed(0)
    student = Student(ARCH, 5, 16).train()
    clips = torch.randint(0, 256, (2, 2, 32, 32, 3), dtype=torch.uint8)  # 2 clips of 2 frames, 32×32
    assert student.feature_map(clips).shape == (2, 768, 2, 2, 2)  # [B, E, T, H/16, W/16]
    blocks = student.backbone.vit.blocks

    def step():
        student.zero_grad()
        logits, _ = student(clips)
        torch.nn.functional.cross_entropy(logits, torch.tensor([1, 3])).backward()

    step()
    for block in blocks:
        assert block.attn.qkv.weight.grad.abs().sum() > 0 and block.temporal_fc.weight.grad.abs().sum() > 0
        # temporal_fc starts at zero (the video model starts as the 2D one), which holds the
        # temporal attention's gradient at zero until temporal_fc has moved
        assert not block.temporal_attn.qkv.weight.grad.any()
    with torch.no_grad():
        for p in student.parameters():
            p -= 0.1 * p.grad if p.grad is not None else 0
    step()
    for block in blocks:
        assert block.temporal_attn.qkv.weight.grad.abs().sum() > 0
        assert block.temporal_attn.proj.weight.grad.abs().sum() > 0 and block.attn.qkv.weight.grad.abs().sum() > 0
    assert student.backbone.time_embed.grad.abs().sum() > 0


def test_any_clip_length_and_frames_whose_sides_are_multiples_of_16():
    backbone = STUDENTS[ARCH].make().eval()
    with torch.no_grad():
        assert backbone.forward_features(torch.randn(1, 3, 5, 48, 32)).shape == (1, 768, 5, 3, 2)
        assert backbone.forward_features(torch.randn(1, 3, 12, 16, 16)).shape == (1, 768, 12, 1, 1)
        with pytest.raises(ValueError, match=r"student.size: 40×40-pixel frames; .* multiples of its 16-pixel"):
            backbone.forward_features(torch.randn(1, 3, 2, 40, 40))


def test_imagenet_weights_load_from_weights_dir_offline_and_give_a_static_clip_the_2d_features(
        tmp_path, no_network):  # noqa: F811
    from safetensors.torch import save_file
    from timm.layers import global_pool_nlc

    torch.manual_seed(1)
    net2d = _image_vit()
    path = tmp_path / "weights" / FILE
    path.parent.mkdir(parents=True)
    save_file(net2d.state_dict(), path)
    student = build_student(_options(ARCH, "imagenet", tmp_path / "weights"), 4, 8).eval()
    assert student.init == (f"imagenet: timm vit_base_patch16_224.orig_in21k_ft_in1k, its spatial layers in "
                            f"{ARCH} (sha256 {_sha256(path)})")
    for block, block2d in zip(student.backbone.vit.blocks, net2d.blocks):
        # TimeSformer's start: the temporal attention copied from the spatial one, its output zero
        assert torch.equal(block.temporal_attn.qkv.weight, block2d.attn.qkv.weight)
        assert torch.equal(block.temporal_norm1.weight, block2d.norm1.weight)
        assert not block.temporal_fc.weight.any() and not block.temporal_fc.bias.any()
    assert not student.backbone.time_embed.any()

    # a static clip: one 32×32 image over 3 frames, through the student's own normalisation
    image = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    clips = image.unsqueeze(1).expand(-1, 3, -1, -1, -1)
    with torch.no_grad():
        fmap = student.feature_map(clips)  # [2, 768, 3, 2, 2]
        _, embedding = student(clips)
        tokens2d = net2d.forward_features((image.permute(0, 3, 1, 2) / 255 - 0.5) / 0.5)  # [2, 1 + 4, 768]
    map2d = tokens2d[:, 1:].transpose(1, 2).reshape(2, 768, 2, 2)
    for t in range(3):
        assert torch.allclose(fmap[:, :, t], map2d, atol=1e-4)
    assert torch.allclose(embedding, global_pool_nlc(tokens2d, pool_type="avg", num_prefix_tokens=1), atol=1e-4)


def test_missing_imagenet_weights_name_the_file_and_the_command_that_fetches_them(tmp_path, no_network):  # noqa: F811
    with pytest.raises(FileNotFoundError) as err:
        build_student(_options(ARCH, "imagenet", tmp_path / "weights"), 4, 8)
    said = str(err.value)
    assert f"{tmp_path / 'weights' / FILE} (or pytorch_model.bin in that folder) does not exist" in said
    assert "svar fetch-weights --configfile <your config>" in said and "rule student_weights" in said
    assert f"https://huggingface.co/{HUB_REPO}/resolve/main/model.safetensors" in said


def test_student_weights_fetches_timms_file_from_the_hub_into_weights_dir(tmp_path, monkeypatch, capsys):
    """Rule student_weights (`svar student-weights`) through the hub client, as the teacher's hub
    files are fetched; `svar fetch-weights --list` names the same place and URL."""
    import huggingface_hub

    from svar import download

    calls = []

    def hub_download(repo, filename, local_dir=None, **kw):
        calls.append((repo, filename, str(local_dir)))
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        (Path(local_dir) / filename).write_bytes(b"timm's weights, as far as this test is concerned")
        return str(Path(local_dir) / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub_download)
    monkeypatch.setattr(download, "offline_reason", lambda url: None)
    weights_dir, receipt = tmp_path / "weights", tmp_path / "receipt.json"
    args = ["student-weights", "--arch", ARCH, "--pretrained", "imagenet", "--weights-dir", str(weights_dir)]
    main([*args, "--out", str(receipt)])
    path = weights_dir / FILE
    assert calls == [(HUB_REPO, "model.safetensors", str(weights_dir / HUB_REPO))]
    written = json.loads(receipt.read_text())
    assert written["file"] == str(path) and written["sha256"] == _sha256(path)
    assert written["weights"] == "vit_base_patch16_224.orig_in21k_ft_in1k"
    assert written["url"] == f"https://huggingface.co/{HUB_REPO}/resolve/main/model.safetensors"
    main([*args, "--out", str(tmp_path / "again.json")])  # already there: kept, not fetched again
    assert len(calls) == 1

    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(f"student: {{arch: {ARCH}, pretrained: imagenet, weights_dir: {weights_dir}}}\n")
    capsys.readouterr()
    main(["fetch-weights", "--list", "--configfile", str(overlay)])
    row = next(line for line in capsys.readouterr().out.splitlines() if "student.pretrained" in line)
    assert f"`{weights_dir / HUB_REPO}` (`student.weights_dir`)" in row and written["url"] in row
    assert "`model.safetensors` or `pytorch_model.bin`" in row

