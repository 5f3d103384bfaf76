"""Shared fixtures: a small generated dataset, its manifest and a random-weight teacher store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# never reach for a model hub from a test: weights come from files the tests make
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """4 classes × 3 groups × 2 clips of 32×32 video, plus a small captioned pool."""
    from svar.datasets.synthetic import DEFAULT_CLASSES, SyntheticSpec, generate

    out = tmp_path_factory.mktemp("data") / "synthetic"
    generate(out, tiny_spec(DEFAULT_CLASSES))
    return out


def tiny_spec(classes, seed: int = 0):
    from svar.datasets.synthetic import SyntheticSpec

    return SyntheticSpec(size=32, groups=3, clips_per_group=2, test_groups=1, min_frames=10, max_frames=16,
                         pretrain_videos=12, seed=seed, classes=tuple(classes[:4]))


@pytest.fixture(scope="session")
def tiny_manifest(tiny_dataset, tmp_path_factory):
    from svar.manifest import load_manifest, write_index

    out = tmp_path_factory.mktemp("index")
    write_index(tiny_dataset / "videos", tiny_dataset / "splits", out / "manifest.csv", out / "exclusions.csv",
                out / "classes.csv")
    return load_manifest(out / "manifest.csv"), out


@pytest.fixture(scope="session")
def tiny_store(tiny_manifest, tmp_path_factory):
    """Teacher features from svar-tiny-clip with random weights (shapes, not knowledge)."""
    import pandas as pd

    from svar.teacher.features import extract

    manifest, index_dir = tiny_manifest
    classes = pd.read_csv(index_dir / "classes.csv")["class_name"].tolist()
    out = tmp_path_factory.mktemp("teacher") / "features.pt"
    return extract(manifest, classes, out, "svar-tiny-clip", "none", frames_per_video=3, batch_size=8,
                   device="cpu", templates=("a {}.",))
