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


def test_a_file_name_with_spaces_is_found_and_a_missing_one_named_by_its_list_line(tiny_dataset, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    video = next((root / "videos").rglob("*_g02_c01.avi"))
    spaced = video.with_name("v with spaces_g02_c01.avi")
    video.rename(spaced)
    lists = root / "splits" / "trainlist01.txt"
    rel = video.relative_to(root / "videos").as_posix()
    lines = lists.read_text().replace(rel, spaced.relative_to(root / "videos").as_posix())
    lists.write_text(lines)
    frame = build_manifest(root / "videos", root / "splits")
    assert "v with spaces_g02_c01" in set(frame["video_id"])
    lineno = next(i for i, line in enumerate(lines.splitlines(), 1) if "v with spaces" in line)
    spaced.unlink()
    with pytest.raises(FileNotFoundError, match=rf"trainlist01.txt:{lineno}: names .*v with spaces_g02_c01.avi, "
                                                r"which is not under"):
        build_manifest(root / "videos", root / "splits")


def test_decoding_workers_get_one_thread_each(monkeypatch):
    """map_videos' spawned workers see the one-thread limits torch, OpenMP and BLAS size their
    pools from, whatever this process's environment says; that environment is left as it was."""
    import os

    from svar.video import WORKER_THREAD_LIMITS, map_videos

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    keys = list(WORKER_THREAD_LIMITS) * 3
    assert map_videos(os.getenv, keys, workers=2, desc="environment") == ["1"] * len(keys)
    assert os.environ["OMP_NUM_THREADS"] == "7" and "MKL_NUM_THREADS" not in os.environ
