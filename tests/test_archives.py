"""svar.archives: ZIPs built here, RAR fixtures from rarfile's own tests, and attacks on both.

The RAR fixtures live in ../shared/fixtures/archives (see its README); their tests skip when
that folder is absent or when no RAR decoder is installed (`apt-get install unar`).
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import rarfile

import svar.archives as extract_module
from svar.archives import ExtractionError, UnsafeArchiveError, extract, extract_nested
from svar.datasets.synthetic import render_video, write_avi

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "archives"


def rar_fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"fixture {path} absent (the shared fixtures are not part of a plain clone)")
    return path


@pytest.fixture
def rar_decoder_installed():
    try:
        rarfile.tool_setup()
    except rarfile.RarCannotExec:
        pytest.skip("no RAR decoder installed (apt-get install unar)")


def snapshot(folder: Path) -> dict[str, int]:
    """Every path under `folder` with its size (-1 for folders): what a refused archive must not change."""
    return {str(p.relative_to(folder)): (p.lstat().st_size if not p.is_dir() else -1) for p in folder.rglob("*")}


def relative_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def write_zip(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    """A ZIP with these files, and symlinks stored as unix ZIP tools store them (mode bits + target as data)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, bytes]:
    """Tiny AVI videos: three in UCF101's layout, three in HMDB51's (class/name.avi)."""
    folder = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(1)
    names = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi",
             "Archery/v_Archery_g01_c01.avi",
             "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair/Brushing_my_hair_u_nm_np1_fr_goo_1.avi",
             "cartwheel/Cartwheel_f_cm_np1_le_med_0.avi"]
    out = {}
    for name in names:
        frames, _ = render_video("green", "triangle", "rotating", 6, 32, rng)
        write_avi(folder / name, frames)
        out[name] = (folder / name).read_bytes()
    return out


def ucf_videos(videos):
    return {k: v for k, v in videos.items() if k[0].isupper()}


# --------------------------------------------------------------------------- ZIP


def test_zip_extracts_every_member_with_its_bytes(videos, tmp_path):
    archive = write_zip(tmp_path / "UCF101.zip", ucf_videos(videos))
    target = tmp_path / "ucf101"
    files = extract(archive, target, progress=False)
    assert [p.relative_to(target).as_posix() for p in files] == sorted(ucf_videos(videos))
    for path in files:
        assert path.read_bytes() == videos[path.relative_to(target).as_posix()]
    assert not (tmp_path / "ucf101.partial").exists()


def test_existing_target_is_not_extracted_again(videos, tmp_path):
    archive = write_zip(tmp_path / "UCF101.zip", ucf_videos(videos))
    first = extract(archive, tmp_path / "ucf101", progress=False)
    archive.unlink()  # a second extraction would need it
    assert extract(archive, tmp_path / "ucf101", progress=False) == first


def test_interrupted_extraction_resumes_keeping_finished_files(videos, tmp_path):
    archive = write_zip(tmp_path / "UCF101.zip", ucf_videos(videos))
    staging = tmp_path / "ucf101.partial"
    done = staging / "Archery" / "v_Archery_g01_c01.avi"  # written (atomically) before the kill
    done.parent.mkdir(parents=True)
    done.write_bytes(videos["Archery/v_Archery_g01_c01.avi"])
    inode = done.stat().st_ino
    stale = staging / "ApplyEyeMakeup" / ".v_ApplyEyeMakeup_g01_c01.avi.k2j4h1.tmp"  # the one being written
    stale.parent.mkdir()
    stale.write_bytes(b"half a video")

    extract(archive, tmp_path / "ucf101", progress=False)
    target = tmp_path / "ucf101"
    assert relative_files(target) == sorted(ucf_videos(videos))
    assert (target / "Archery" / "v_Archery_g01_c01.avi").stat().st_ino == inode
    assert not staging.exists()


def test_zip_with_parent_traversal_is_refused_and_writes_nothing(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    archive = write_zip(work / "evil.zip", {"fine.txt": b"fine", "../evil.txt": b"pwned"})
    before = snapshot(tmp_path)
    with pytest.raises(UnsafeArchiveError) as caught:
        extract(archive, work / "out", progress=False)
    assert "'../evil.txt'" in str(caught.value) and str(archive) in str(caught.value)
    assert snapshot(tmp_path) == before  # not even the target or its .partial


def test_zip_with_absolute_member_is_refused(tmp_path):
    archive = write_zip(tmp_path / "evil.zip", {"/tmp/svar-absolute.txt": b"pwned"})
    with pytest.raises(UnsafeArchiveError, match="absolute path"):
        extract(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_zip_symlink_leaving_the_target_is_refused(tmp_path):
    archive = write_zip(tmp_path / "evil.zip", {"up/pwned.txt": b"pwned"}, symlinks={"up": ".."})
    before = snapshot(tmp_path)
    with pytest.raises(UnsafeArchiveError, match="symlink to '..'"):
        extract(archive, tmp_path / "out", progress=False)
    assert snapshot(tmp_path) == before


def test_symlink_inside_the_target_is_not_created(tmp_path):
    archive = write_zip(tmp_path / "links.zip", {"data/a.txt": b"a"}, symlinks={"alias": "data/a.txt"})
    files = extract(archive, tmp_path / "out", progress=False)
    assert [p.relative_to(tmp_path / "out").as_posix() for p in files] == ["data/a.txt"]
    assert not os.path.lexists(tmp_path / "out" / "alias")


def test_file_that_is_no_archive_is_reported(tmp_path):
    path = tmp_path / "UCF101.rar"
    path.write_bytes(b"<html>moved</html>")
    with pytest.raises(ExtractionError, match="neither a ZIP nor a RAR archive"):
        extract(path, tmp_path / "out", progress=False)


def test_missing_archive_is_reported(tmp_path):
    with pytest.raises(ExtractionError, match="no such archive"):
        extract(tmp_path / "UCF101.rar", tmp_path / "out", progress=False)


def test_corrupt_zip_member_is_reported_and_nothing_is_published(tmp_path):
    data = b"x" * 10_000
    archive = write_zip(tmp_path / "a.zip", {"a.txt": data})
    raw = bytearray(archive.read_bytes())
    at = raw.index(data[:100])  # stored, so the bytes are there verbatim
    raw[at] ^= 0xFF
    archive.write_bytes(bytes(raw))
    with pytest.raises(ExtractionError, match="cannot read member 'a.txt'"):
        extract(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    assert relative_files(tmp_path / "out.partial") == []  # the half-written file was removed


# --------------------------------------------------------------------------- nested (HMDB51's layout)


def hmdb_like(videos, tmp_path) -> Path:
    """An archive of per-class archives, as hmdb51_org.rar: brush_hair.zip holds brush_hair/*.avi."""
    inner_dir = tmp_path / "inner"
    inner_dir.mkdir()
    for label in ("brush_hair", "cartwheel"):
        write_zip(inner_dir / f"{label}.zip", {k: v for k, v in videos.items() if k.startswith(label + "/")})
    write_zip(inner_dir / "flat.zip", {"readme.txt": b"no class folder"})
    outer = {p.name: p.read_bytes() for p in sorted(inner_dir.iterdir())}
    outer["notes.txt"] = b"not an archive"
    return write_zip(tmp_path / "hmdb51_org.zip", outer)


def test_nested_archive_extracts_each_inner_archive_into_its_folder(videos, tmp_path):
    target = tmp_path / "hmdb51"
    extract_nested(hmdb_like(videos, tmp_path), target, progress=False)
    hmdb = sorted(k for k in videos if k[0].islower())
    assert relative_files(target) == sorted(hmdb + ["flat/readme.txt", "notes.txt"])
    for name in hmdb:
        assert (target / name).read_bytes() == videos[name]
    assert [p.name for p in target.iterdir() if p.name.startswith(".")] == []
    assert not (tmp_path / "hmdb51.partial").exists()


def test_nested_extraction_resumes_after_an_interruption(videos, tmp_path, monkeypatch):
    archive = hmdb_like(videos, tmp_path)
    target = tmp_path / "hmdb51"
    real_extract = extract_module.extract
    extracted, interrupt_at = [], {"cartwheel.zip"}

    def recording_extract(source, destination, progress=True):
        extracted.append(Path(source).name)
        if Path(source).name in interrupt_at:
            raise KeyboardInterrupt
        return real_extract(source, destination, progress)

    monkeypatch.setattr(extract_module, "extract", recording_extract)
    with pytest.raises(KeyboardInterrupt):
        extract_nested(archive, target, progress=False)
    assert "brush_hair.zip" in extracted and not target.exists()

    extracted.clear()
    interrupt_at.clear()
    extract_nested(archive, target, progress=False)
    assert "brush_hair.zip" not in extracted  # done before the interruption, not redone
    assert relative_files(target / "cartwheel") == ["Cartwheel_f_cm_np1_le_med_0.avi"]
    assert relative_files(target / "brush_hair") == sorted(
        k.split("/", 1)[1] for k in videos if k.startswith("brush_hair/"))


# --------------------------------------------------------------------------- RAR fixtures


def read_exp(path: Path) -> tuple[dict[str, tuple[int, int]], set[str]]:
    """rarfile's `.exp` listing: ({file name: (size, crc32)}, {folder names})."""
    files, folders = {}, set()
    for block in re.split(r"\n(?=\S)", path.read_text(encoding="utf-8")):
        kind = re.search(r"\bis=([F-])([D-])([L-])", block)
        if not kind:
            continue  # the `Archive:` header
        name = re.search(r"^\s+name=(.*)$", block, re.M).group(1)
        if kind.group(1) == "F":
            size = int(re.search(r"\bdec=(\d+)", block).group(1))
            crc = int(re.search(r"\bcrc=0x([0-9a-f]+)", block).group(1), 16)
            files[name] = (size, crc)
        elif kind.group(2) == "D":
            folders.add(name.rstrip("/"))
    return files, folders


@pytest.mark.parametrize("name", ["rarfile_rar5-subdirs.rar", "rarfile_rar3-solid.rar", "rarfile_seektest.rar"])
def test_rar_fixture_matches_its_listing(name, tmp_path, rar_decoder_installed):
    archive = rar_fixture(name)
    files, folders = read_exp(archive.with_name(archive.name + ".exp"))
    target = tmp_path / "out"
    extract(archive, target, progress=False)
    assert relative_files(target) == sorted(files)
    for file_name, (size, crc) in files.items():
        data = (target / file_name).read_bytes()
        assert (len(data), zlib.crc32(data)) == (size, crc), file_name
    for folder in folders:
        assert (target / folder).is_dir(), folder


def test_rar_symlink_traversal_is_refused_and_writes_nothing_outside(tmp_path, rar_decoder_installed):
    archive = rar_fixture("rarfile_rar5-evil-symlink-traversal.rar")
    work = tmp_path / "work"
    work.mkdir()
    target = work / "out"
    before = snapshot(work)
    with pytest.raises(UnsafeArchiveError) as caught:
        extract(archive, target, progress=False)
    assert "'up'" in str(caught.value) and "'up/pwned.txt'" in str(caught.value)
    assert snapshot(work) == before
    assert [p for p in tmp_path.rglob("pwned.txt") if target not in p.parents] == []
    assert not target.exists()


def test_missing_rar_decoder_names_the_package_to_install(tmp_path, monkeypatch):
    archive = rar_fixture("rarfile_rar3-solid.rar")
    for tool in ("UNRAR_TOOL", "UNAR_TOOL", "BSDTAR_TOOL", "SEVENZIP_TOOL", "SEVENZIP2_TOOL"):
        monkeypatch.setattr(rarfile, tool, str(tmp_path / f"no-such-{tool.lower()}"))
    monkeypatch.setattr(rarfile, "CURRENT_SETUP", None)
    with pytest.raises(ExtractionError, match="apt-get install unar"):
        extract(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_rar_decoder_that_cannot_decode_is_reported(tmp_path, monkeypatch):
    """A decoder that runs but yields nothing (as bsdtar on a solid RAR): the error says which and what to do."""
    archive = rar_fixture("rarfile_rar3-solid.rar")
    useless = tmp_path / "unrar"
    useless.write_text("#!/bin/sh\nexit 0\n")
    useless.chmod(0o755)
    for tool in ("UNAR_TOOL", "BSDTAR_TOOL", "SEVENZIP_TOOL", "SEVENZIP2_TOOL"):
        monkeypatch.setattr(rarfile, tool, str(tmp_path / f"no-such-{tool.lower()}"))
    monkeypatch.setattr(rarfile, "UNRAR_TOOL", str(useless))
    monkeypatch.setattr(rarfile, "CURRENT_SETUP", None)
    with pytest.raises(ExtractionError) as caught:
        extract(archive, tmp_path / "out", progress=False)
    message = str(caught.value)
    assert "cannot read member 'stest1.txt'" in message and str(useless) in message and "unar" in message
    assert not (tmp_path / "out").exists()
