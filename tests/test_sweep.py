"""`svar sweep`: settings are chosen on validation videos; no test video is ever read."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml

from svar.config import split_path
from svar.splits import write_split
from svar.sweep import format_sweep, parse_assignment, sweep, with_setting


@pytest.fixture()
def workflow_outputs(tiny_manifest, tiny_store, tmp_path):
    """What the workflow's first stages leave in results/<name>/ for a small config."""
    manifest, index_dir = tiny_manifest
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump({
        "name": "small", "fractions": [0.25], "seeds": [0, 1], "methods": ["supervised"],
        "student": {"size": 16, "cache_size": [16, 16], "cache_frames": 4},
        "train": {"steps": 2, "batch_size": 4, "warmup_steps": 1, "device": "cpu"}}))
    root = tmp_path / "results" / "small"
    (root / "teacher").mkdir(parents=True)
    shutil.copy(index_dir / "manifest.csv", root / "manifest.csv")
    torch.save(tiny_store, root / "teacher" / "features.pt")
    for seed in (0, 1):
        write_split(manifest, 0.25, seed, split_path(root, 0.25, seed), val_per_class=1)
    return config, manifest


def test_a_sweep_scores_each_variant_on_validation_videos_only(workflow_outputs, tmp_path, monkeypatch):
    import svar.clips.store

    config, manifest = workflow_outputs
    test_paths = set(manifest[manifest["split1"] == "test"]["path"])
    decoded = []
    real = svar.clips.store.decode_frames
    monkeypatch.setattr(svar.clips.store, "decode_frames", lambda paths, *a, **k: decoded.extend(paths)
                        or real(paths, *a, **k))
    rows = sweep([config], "supervised", 0.25, ["train.lr=0.01", "train.crop_padding=0"], workdir=tmp_path)
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ("config", 0), ("config", 1), ("train.lr=0.01", 0), ("train.lr=0.01", 1),
        ("train.crop_padding=0", 0), ("train.crop_padding=0", 1)]  # the config's seeds
    assert all(0 <= r["val_top1"] <= 1 and r["n_val"] == 4 for r in rows)
    assert decoded and not set(decoded) & test_paths  # no test video decoded
    text = format_sweep(rows, "supervised", 0.25)
    assert "validation top-1" in text and "train.lr=0.01" in text and "no test video scored" in text
    # the same seed and settings, the same validation accuracy (training is deterministic on CPU)
    again = sweep([config], "supervised", 0.25, [], seeds=[1], workdir=tmp_path)
    assert [r["val_top1"] for r in again] == [rows[1]["val_top1"]]


def test_a_sweep_names_what_is_missing_or_wrong(workflow_outputs, tmp_path):
    config, _ = workflow_outputs
    with pytest.raises(FileNotFoundError, match=r"fraction0.5_seed0.csv: missing .* snakemake --cores 2"):
        sweep([config], "supervised", 0.5, [], workdir=tmp_path)
    with pytest.raises(ValueError, match="not a student method"):
        sweep([config], "clip_zeroshot", 0.25, [], workdir=tmp_path)
    with pytest.raises(ValueError, match="give KEY=VALUE"):
        parse_assignment("train.lr")
    with pytest.raises(ValueError, match="train.lrr: no such key"):
        with_setting({"train": {"lr": 0.1}}, "train.lrr", 0.2)
