"""The manifest: every video, its class and split, and the frame count decoding really gives."""

import av
import pytest

from svar.manifest import SplitFormatError, build_manifest, read_class_index


def pyav_frame_count(path):
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_every_generated_video_decodes_to_the_stated_frame_count(tiny_manifest):
    manifest, _ = tiny_manifest
    assert len(manifest) == 4 * 3 * 2
    assert manifest["decodes"].all()
    for row in manifest.itertuples():
        assert row.frames == pyav_frame_count(row.path), row.path
        assert (row.width, row.height, row.fps) == (32, 32, 25.0)
    assert set(manifest["split1"]) == {"train", "test"}
    assert manifest.groupby("label")["class_name"].nunique().eq(1).all()


def test_undecodable_video_is_excluded_with_its_reason(tiny_dataset, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    broken = next((root / "videos").rglob("*_g02_c01.avi"))
    broken.write_bytes(b"this is not a video" * 10)
    manifest = build_manifest(root / "videos", root / "splits")
    bad = manifest[~manifest["decodes"]]
    assert list(bad["video_id"]) == [broken.stem]
    assert str(broken.name) in bad["error"].iloc[0] and "decord" in bad["error"].iloc[0]
    assert manifest["decodes"].sum() == len(manifest) - 1


def test_bad_class_index_names_file_and_line(tmp_path):
    bad = tmp_path / "classInd.txt"
    bad.write_text("1 Archery\nBowling\n")
    with pytest.raises(SplitFormatError, match=r"classInd.txt:2"):
        read_class_index(bad)


def test_missing_video_named_by_split_file(tiny_dataset, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    gone = next((root / "videos").rglob("*.avi"))
    gone.unlink()
    with pytest.raises(FileNotFoundError, match=gone.name):
        build_manifest(root / "videos", root / "splits")
