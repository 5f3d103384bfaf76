"""`svar probe` on real files in many codecs, one of them corrupt."""

import io
import shutil
from pathlib import Path

import av
import pandas as pd
import numpy as np
import pytest

import svar.video
from svar.probe import COLUMNS, find_videos, format_table, main_probe, probe_paths, summary_line

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "videos"
CORRUPT = "decord_corrupted.mp4"
AV1 = "torchcodec_av1_video.mkv"
# decord pads this file to the container's 30 frames by repeating the last one; PyAV decodes 25
DECORD_OVERCOUNTS = "torchcodec_discard_first_keyframe.mp4"


# skip, not fail, in a plain clone: the real-world fixtures live outside the project
pytestmark = pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"{VIDEOS} is absent")


@pytest.fixture(scope="module")
def probed() -> pd.DataFrame:
    return probe_paths([VIDEOS])


def row(df: pd.DataFrame, name: str) -> pd.Series:
    return df[df["path"].map(lambda p: Path(p).name) == name].squeeze()


def pyav_frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_every_fixture_is_probed_and_the_corrupt_one_reported(probed):
    assert list(probed.columns) == COLUMNS
    assert len(probed) == 13
    assert (probed["status"] == "ok").sum() == 12
    corrupt = row(probed, CORRUPT)
    assert corrupt["status"] not in ("", "ok")
    assert "decord" in corrupt["status"] and "pyav" in corrupt["status"]
    assert summary_line(probed) == "13 videos, 12 decodable"


DECODABLE = sorted(p.name for p in VIDEOS.iterdir() if p.name != CORRUPT) if VIDEOS.is_dir() else []


@pytest.mark.parametrize("name", DECODABLE)
def test_frame_count_is_what_pyav_decodes(probed, name):
    # DECORD_OVERCOUNTS is the case that matters: decord claims 30 frames, 25 decode
    assert row(probed, name)["frames"] == pyav_frame_count(VIDEOS / name)


def test_av1_decodes(probed):
    av1 = row(probed, AV1)
    assert av1["status"] == "ok" and av1["frames"] == 125
    assert av1["decoder"] in svar.video.DECODERS


def test_each_decoder_covers_for_the_other(monkeypatch):
    def fails(*args):
        raise RuntimeError("cannot open this file")

    # frames are read with decord first: where it fails, PyAV reads the same frames
    expected = svar.video.read_frames(str(VIDEOS / AV1), [0, 60, 124])
    monkeypatch.setitem(svar.video._READERS, "decord", fails)
    assert np.array_equal(svar.video.read_frames(str(VIDEOS / AV1), [0, 60, 124]), expected)
    # probing counts with PyAV first: where it fails, decord probes
    monkeypatch.setitem(svar.video._PROBES, "pyav", fails)
    av1 = probe_paths([VIDEOS / AV1]).squeeze()
    assert av1["status"] == "ok" and av1["decoder"] == "decord"
    assert av1["frames"] == pyav_frame_count(VIDEOS / AV1)


def test_csv_output_parses_and_the_summary_goes_to_stderr(capsys):
    files = [VIDEOS / "decord_video_90.mov", VIDEOS / CORRUPT]
    assert main_probe(files, csv=True, workers=1) == 0
    out, err = capsys.readouterr()
    table = pd.read_csv(io.StringIO(out), keep_default_na=False)
    assert list(table.columns) == COLUMNS
    assert table["status"].tolist()[0] == "ok" and table["status"].tolist()[1] != "ok"
    assert err.strip().endswith("2 videos, 1 decodable")


def test_text_output_is_an_aligned_table_then_the_summary(capsys):
    assert main_probe([VIDEOS / "decord_video_90.mov", VIDEOS / CORRUPT], csv=False, workers=1) == 0
    lines = capsys.readouterr().out.rstrip("\n").split("\n")
    assert lines[0].split() == COLUMNS
    assert lines[-1] == "2 videos, 1 decodable"
    assert "decord_video_90.mov" in lines[2] and " ok" in lines[2]
    # a failed video shows "-" for its measurements, aligned under the headers
    assert lines[3].split()[1:5] == ["-", "-", "-", "-"]
    frames_end = lines[0].index("frames") + len("frames")
    assert lines[3][frames_end - 2:frames_end] == " -"


def test_format_table_right_aligns_numbers():
    df = pd.DataFrame([["a.mp4", 5, 25.0, 64, 48, "h264", "decord", "ok"],
                       ["long/name.mp4", 300, 29.97, 1280, 720, "hevc", "pyav", "ok"]], columns=COLUMNS)
    header, _, first, second = format_table(df).split("\n")
    end = header.index("frames") + len("frames")
    assert first[:end].endswith("    5") and second[:end].endswith("  300")


def test_folders_are_searched_recursively_by_extension(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(VIDEOS / "decord_video_90.mov", tmp_path / "a" / "b" / "clip.MOV")
    shutil.copy(VIDEOS / "decord_unordered.mov", tmp_path / "a" / "other.mp4")
    (tmp_path / "a" / "notes.txt").write_text("not a video")
    assert find_videos([tmp_path]) == [str(tmp_path / "a" / "b" / "clip.MOV"), str(tmp_path / "a" / "other.mp4")]
    # a file named directly is probed whatever its extension, and once
    named = tmp_path / "a" / "notes.txt"
    assert find_videos([named, named]) == [str(named)]


def test_missing_file_is_a_failed_row_and_no_videos_is_an_error(tmp_path):
    missing = probe_paths([tmp_path / "absent.mp4"]).squeeze()
    assert missing["status"] == "no such file"
    with pytest.raises(FileNotFoundError, match="no video files"):
        probe_paths([tmp_path])


def test_worker_processes_give_the_same_rows(probed):
    files = [VIDEOS / name for name in ("decord_video_90.mov", "decord_unordered.mov", CORRUPT)]
    parallel = probe_paths(files, workers=2)
    serial = probed.set_index("path").loc[[str(f) for f in files]].reset_index()
    # decord's error text carries a timestamp, so for the corrupt file only "failed" must agree
    measured = [c for c in COLUMNS if c != "status"]
    pd.testing.assert_frame_equal(parallel[measured], serial[measured])
    assert (parallel["status"] == "ok").tolist() == (serial["status"] == "ok").tolist()
