"""The teacher stage: open_clip features with the right shapes, random weights flagged loudly."""

import logging

import pandas as pd
import pytest
import torch

from svar.teacher.features import extract
from svar.teacher.store import load_store, video_features, zeroshot_logits


@pytest.mark.parametrize("model_name", ["svar-tiny-clip", "ViT-B-32"])
def test_features_have_the_right_shape(tiny_manifest, tmp_path, model_name, caplog):
    manifest, index_dir = tiny_manifest
    manifest = manifest.head(3)
    classes = pd.read_csv(index_dir / "classes.csv")["class_name"].tolist()
    with caplog.at_level(logging.WARNING):
        extract(manifest, classes, tmp_path / "f.pt", model_name, "none", frames_per_video=2, batch_size=2,
                device="cpu", templates=("a {}.", "a video of {}."))
    assert "RANDOM" in caplog.text
    store = load_store(tmp_path / "f.pt")  # weights_only: plain tensors and lists
    dim = {"svar-tiny-clip": 64, "ViT-B-32": 512}[model_name]
    assert store["frame_features"].shape == (3, 2, dim)
    assert store["frame_features"].dtype == torch.float16
    assert store["text_embeddings"].shape == (len(classes), dim)
    assert torch.allclose(store["text_embeddings"].norm(dim=1), torch.ones(len(classes)), atol=1e-4)
    assert store["video_ids"] == list(manifest["video_id"])
    assert store["meta"]["random_weights"] is True and store["meta"]["pretrained"] == "random"
    assert zeroshot_logits(store, video_features(store, manifest["video_id"])).shape == (3, len(classes))


def test_video_feature_is_normalised_frame_mean(tiny_store):
    ids = tiny_store["video_ids"][:2]
    frames = torch.nn.functional.normalize(tiny_store["frame_features"][:2].float(), dim=-1)
    expected = torch.nn.functional.normalize(frames.mean(1), dim=-1)
    assert torch.allclose(video_features(tiny_store, ids), expected, atol=1e-6)


def test_unknown_model_and_missing_checkpoint_are_clear_errors(tiny_manifest, tmp_path):
    manifest, _ = tiny_manifest
    with pytest.raises(ValueError, match="teacher.model: unknown open_clip model 'no-such-model'"):
        extract(manifest.head(1), ["A"], tmp_path / "f.pt", "no-such-model", "none", device="cpu")
    with pytest.raises(FileNotFoundError, match="results/nowhere.pt does not exist"):
        extract(manifest.head(1), ["A"], tmp_path / "f.pt", "svar-tiny-clip", "results/nowhere.pt", device="cpu")
    assert not (tmp_path / "f.pt").exists()
