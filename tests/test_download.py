"""svar.download against a loopback HTTP server with Range support and faults the tests choose.

The server binds 127.0.0.1 only and serves a ZIP of tiny AVI videos in UCF101's layout,
built here. Each fault (drop mid-body, corrupt bytes, stall, 503, ignore Range) applies to
the next request(s) of a path, so every test says exactly what the network does.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from svar.datasets import fetch_archive, known_archives
from svar.download import ArchiveInfo, ChecksumError, DownloadError, download, expected_checksums
from svar.datasets.synthetic import render_video, write_avi

STALL_LIMIT_S = 10  # a stalled handler gives up by itself, even if a test forgets to release it


class FakeArchiveHost:
    """What the loopback server serves and how it misbehaves; records every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[str]] = {}  # path -> faults for its next requests, in order
        self.ignores_range: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.release_stalls = threading.Event()
        self.base_url = ""

    def serve(self, path: str, data: bytes, faults=()) -> str:
        self.files[path] = data
        self.faults[path] = list(faults)
        return self.base_url + path

    def ranges(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        host: FakeArchiveHost = self.server.host
        range_header = self.headers.get("Range")
        host.requests.append((self.path, range_header))
        data = host.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        fault = host.faults[self.path].pop(0) if host.faults[self.path] else None
        if fault == "503":
            self.send_error(503)
            return
        start = 0
        if range_header and self.path not in host.ignores_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if fault == "corrupt":
            body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "stall":  # headers sent, body never comes
            self.wfile.flush()
            host.release_stalls.wait(STALL_LIMIT_S)
        elif fault == "drop":  # half the body, then the connection closes
            self.wfile.write(body[: len(body) // 2])
        else:
            self.wfile.write(body)


@pytest.fixture
def host(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # never send loopback requests to a configured proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    state = FakeArchiveHost()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.host = state
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    state.release_stalls.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def ucf_zip(tmp_path_factory) -> bytes:
    """A ZIP in UCF101's layout, Class/v_Class_gXX_cYY.avi, of tiny real AVI videos."""
    rng = np.random.default_rng(0)
    videos = tmp_path_factory.mktemp("videos")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for folder, (colour, shape, motion) in {"RedSquareMovingLeft": ("red", "square", "moving left"),
                                                "BlueCircleGrowing": ("blue", "circle", "growing")}.items():
            for group in (1, 2):
                name = f"{folder}/v_{folder}_g{group:02d}_c01.avi"
                frames, _ = render_video(colour, shape, motion, 8, 32, rng)
                write_avi(videos / name, frames)
                archive.write(videos / name, name)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def part_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


FAST = dict(backoff=0, timeout=5, progress=False)


def test_download_verifies_and_renames(host, ucf_zip, tmp_path):
    url = host.serve("/UCF101.zip", ucf_zip)
    dest = tmp_path / "UCF101.zip"
    assert download(url, dest, sha256=sha256(ucf_zip), md5=hashlib.md5(ucf_zip).hexdigest(), **FAST) == dest
    assert dest.read_bytes() == ucf_zip
    assert not part_of(dest).exists()
    assert zipfile.ZipFile(dest).namelist()[0] == "RedSquareMovingLeft/v_RedSquareMovingLeft_g01_c01.avi"


def test_existing_verified_file_is_not_fetched_again(host, ucf_zip, tmp_path):
    url = host.serve("/UCF101.zip", ucf_zip)
    dest = tmp_path / "UCF101.zip"
    dest.write_bytes(ucf_zip)
    download(url, dest, sha256=sha256(ucf_zip), **FAST)
    assert host.requests == []


def test_existing_file_with_another_digest_is_reported_not_replaced(host, ucf_zip, tmp_path):
    url = host.serve("/UCF101.zip", ucf_zip)
    dest = tmp_path / "UCF101.zip"
    dest.write_bytes(b"something else")
    with pytest.raises(ChecksumError, match="Delete .* to download it again"):
        download(url, dest, sha256=sha256(ucf_zip), **FAST)
    assert dest.read_bytes() == b"something else" and host.requests == []


def test_dropped_connection_resumes_with_a_range_request(host, ucf_zip, tmp_path):
    url = host.serve("/UCF101.zip", ucf_zip, faults=["drop"])
    dest = tmp_path / "UCF101.zip"
    download(url, dest, sha256=sha256(ucf_zip), retries=2, **FAST)
    assert dest.read_bytes() == ucf_zip
    assert host.ranges("/UCF101.zip") == [None, f"bytes={len(ucf_zip) // 2}-"]


def test_partial_file_is_never_taken_as_complete(host, ucf_zip, tmp_path):
    """No digest, no retries: the short body is detected by its size and kept only as `.part`."""
    url = host.serve("/UCF101.zip", ucf_zip, faults=["drop"])
    dest = tmp_path / "UCF101.zip"
    with pytest.raises(DownloadError, match=re.escape(url)) as caught:
        download(url, dest, retries=0, **FAST)
    assert "short read" in str(caught.value) and "run again to resume" in str(caught.value)
    assert not dest.exists()
    assert part_of(dest).stat().st_size == len(ucf_zip) // 2

    download(url, dest, retries=0, **FAST)  # the next run resumes
    assert dest.read_bytes() == ucf_zip
    assert host.ranges("/UCF101.zip")[-1] == f"bytes={len(ucf_zip) // 2}-"


def test_part_file_left_by_a_killed_run_is_resumed(host, ucf_zip, tmp_path):
    url = host.serve("/UCF101.zip", ucf_zip)
    dest = tmp_path / "UCF101.zip"
    part_of(dest).write_bytes(ucf_zip[:1000])
    download(url, dest, sha256=sha256(ucf_zip), **FAST)
    assert dest.read_bytes() == ucf_zip and host.ranges("/UCF101.zip") == ["bytes=1000-"]


def test_complete_part_file_left_by_a_killed_run_is_verified(host, ucf_zip, tmp_path):
    """Every byte received but not yet renamed: the server answers 416 to the Range request."""
    url = host.serve("/UCF101.zip", ucf_zip)
    dest = tmp_path / "UCF101.zip"
    part_of(dest).write_bytes(ucf_zip)
    download(url, dest, sha256=sha256(ucf_zip), **FAST)
    assert dest.read_bytes() == ucf_zip and host.ranges("/UCF101.zip") == [f"bytes={len(ucf_zip)}-"]


def test_server_ignoring_range_restarts_from_zero(host, ucf_zip, tmp_path):
    url = host.serve("/UCF101.zip", ucf_zip)
    host.ignores_range.add("/UCF101.zip")
    dest = tmp_path / "UCF101.zip"
    part_of(dest).write_bytes(b"\0" * 1000)  # bytes that must not survive: the answer starts at 0
    download(url, dest, sha256=sha256(ucf_zip), **FAST)
    assert dest.read_bytes() == ucf_zip and host.ranges("/UCF101.zip") == ["bytes=1000-"]


def test_corrupt_bytes_raise_checksum_error_and_leave_nothing(host, ucf_zip, tmp_path):
    url = host.serve("/UCF101.zip", ucf_zip, faults=["corrupt"])
    dest = tmp_path / "UCF101.zip"
    with pytest.raises(ChecksumError) as caught:
        download(url, dest, sha256=sha256(ucf_zip), **FAST)
    message = str(caught.value)
    corrupted = bytes(b ^ 0xFF for b in ucf_zip[:64]) + ucf_zip[64:]
    for expected in ("UCF101.zip.part", url, sha256(ucf_zip), sha256(corrupted)):
        assert expected in message
    assert not dest.exists() and not part_of(dest).exists()


def test_not_found_fails_at_once_naming_the_url(host, tmp_path):
    url = host.base_url + "/missing.rar"
    dest = tmp_path / "missing.rar"
    started = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        download(url, dest, retries=5, backoff=10, timeout=5, progress=False)
    assert time.monotonic() - started < 2  # no back-off: 4xx is not retried
    message = str(caught.value)
    assert url in message and "404" in message and "archives_dir" in message
    assert host.requests == [("/missing.rar", None)]
    assert not dest.exists() and not part_of(dest).exists()


def test_stalled_server_times_out_and_names_the_url(host, ucf_zip, tmp_path):
    url = host.serve("/UCF101.zip", ucf_zip, faults=["stall", "stall"])
    dest = tmp_path / "UCF101.zip"
    started = time.monotonic()
    with pytest.raises(DownloadError, match=re.escape(url)) as caught:
        download(url, dest, sha256=sha256(ucf_zip), retries=1, backoff=0, timeout=0.5, progress=False)
    assert time.monotonic() - started < 4
    assert "timed out" in str(caught.value) and "2 failed attempt(s)" in str(caught.value)
    assert len(host.requests) == 2 and not dest.exists()


def test_server_error_is_retried(host, ucf_zip, tmp_path):
    url = host.serve("/UCF101.zip", ucf_zip, faults=["503"])
    dest = tmp_path / "UCF101.zip"
    download(url, dest, sha256=sha256(ucf_zip), retries=1, **FAST)
    assert dest.read_bytes() == ucf_zip and len(host.requests) == 2


def test_partial_digest_checks_the_recorded_ends(host, ucf_zip, tmp_path):
    url = host.serve("/UCF101.zip", ucf_zip)
    digest = sha256(ucf_zip)
    download(url, tmp_path / "a.zip", sha256_prefix=digest[:8], sha256_suffix=digest[-7:], **FAST)
    wrong_suffix = "0" * 7 if not digest.endswith("0" * 7) else "1" * 7
    with pytest.raises(ChecksumError, match="as far as it is recorded"):
        download(url, tmp_path / "b.zip", sha256_prefix=digest[:8], sha256_suffix=wrong_suffix, **FAST)
    assert not (tmp_path / "b.zip").exists() and not part_of(tmp_path / "b.zip").exists()


def test_digests_must_be_full_or_given_as_ends():
    with pytest.raises(ValueError, match="sha256_prefix"):
        expected_checksums(sha256="5c0d1a53")
    with pytest.raises(ValueError, match="8 lowercase hex"):
        expected_checksums(sha256_prefix="abc")
    assert [str(c) for c in expected_checksums(md5="15E67781E70DCFBDCE2D7DBB9B3344B5")] == [
        "15e67781e70dcfbdce2d7dbb9b3344b5"]


def test_known_archives_record_the_published_digests():
    expected = {  # file name: (URL, sha256 as far as known: prefix, suffix, md5)
        "UCF101.rar": ("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar", None, None, None),
        "UCF101TrainTestSplits-RecognitionTask.zip": (
            "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip",
            "5c0d1a53", "224bd27", None),
        "UCF101_videos.zip": ("https://storage.googleapis.com/thumos14_files/UCF101_videos.zip",
                              "dabf56f5", "532b0d", None),
        "hmdb51_org.rar": ("http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",
                           "9e714a0d", "fa912a328e", None),
        "test_train_splits.rar": ("http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar",
                                  None, None, "15e67781e70dcfbdce2d7dbb9b3344b5"),
    }
    assert set(known_archives()) == set(expected)
    for name, (url, prefix, suffix, md5) in expected.items():
        info = known_archives()[name]
        assert info.url == url and info.filename == name
        checks = {c.algorithm: c for c in info.checksums()}
        if prefix:
            assert checks["sha256"].prefix.startswith(prefix)
            assert (checks["sha256"].suffix or checks["sha256"].prefix).endswith(suffix)
        else:
            assert "sha256" not in checks
        assert (checks["md5"].prefix if "md5" in checks else None) == md5


@pytest.fixture
def known_test_archive(host, ucf_zip, monkeypatch):
    url = host.serve("/test_videos.zip", ucf_zip)
    known = {**known_archives(), "test_videos.zip": ArchiveInfo(url, "a test archive", sha256=sha256(ucf_zip))}
    monkeypatch.setattr("svar.datasets.known_archives", lambda: known)
    return ucf_zip


def test_fetch_archive_uses_archives_dir_without_network(host, known_test_archive, tmp_path):
    local = tmp_path / "shared" / "test_videos.zip"
    local.parent.mkdir()
    local.write_bytes(known_test_archive)
    assert fetch_archive("test_videos.zip", archives_dir=local.parent, download_dir=tmp_path / "dl",
                         progress=False) == local
    assert host.requests == [] and not (tmp_path / "dl").exists()


def test_fetch_archive_downloads_what_archives_dir_lacks(host, known_test_archive, tmp_path):
    (tmp_path / "shared").mkdir()
    path = fetch_archive("test_videos.zip", archives_dir=tmp_path / "shared", download_dir=tmp_path / "dl",
                         progress=False)
    assert path == tmp_path / "dl" / "test_videos.zip" and path.read_bytes() == known_test_archive


def test_fetch_archive_refuses_a_wrong_local_copy_and_keeps_it(host, known_test_archive, tmp_path):
    local = tmp_path / "test_videos.zip"
    local.write_bytes(known_test_archive[:-1])
    with pytest.raises(ChecksumError, match="Replace it with the official test_videos.zip"):
        fetch_archive("test_videos.zip", archives_dir=tmp_path, download_dir=tmp_path / "dl", progress=False)
    assert local.exists() and host.requests == []


def test_fetch_archive_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="UCF101.rar"):
        fetch_archive("UCF102.rar")
