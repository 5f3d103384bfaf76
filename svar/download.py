"""Download the datasets' archives over HTTP: resumable, retried, verified, atomic.

UCF101.rar is 6.5 GB on a university web server, and such transfers drop or stall. So:

- bytes land in `<dest>.part`, and `<dest>` appears (by rename) only once the transfer is
  complete and its checksum verifies: a partial file is never taken for a complete one;
- an interrupted transfer (dropped connection, stalled server, killed run) continues from the
  bytes already in `<dest>.part` with an HTTP `Range` request;
- transient failures (connection errors, timeouts, short reads, 5xx) are retried with
  exponential back-off; client errors (404 and other 4xx) are not, as retrying cannot fix them.

Standard library only (urllib), so that fetching data adds no dependency.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

USER_AGENT = "svar-download/0.1 (Python urllib)"
HASH_CHUNK = 1 << 20
# 4xx answers that say "try again later" rather than "this request is wrong"
RETRYABLE_CLIENT_ERRORS = {408, 425, 429}
# what to do about an archive svar cannot download (the default of download()'s `by_hand`)
ARCHIVE_BY_HAND = "download the archive by other means and point `archives_dir:` at the folder that holds it"
# seconds a machine without a route to a host takes to say so: refusals and DNS failures come at
# once; a firewall that drops packets silently is waited for this long
PROBE_TIMEOUT_S = 10.0


class DownloadError(RuntimeError):
    """A download failed; the message names the URL, what went wrong and what to do."""


class ChecksumError(DownloadError):
    """A file's digest differs from the published one; the message names file, URL and both digests."""


@dataclass(frozen=True)
class Checksum:
    """The published digest of a file, as far as it is recorded.

    Either the full hex digest (in `prefix`, with `suffix` empty) or only its first and last
    characters, when only those were recorded. A partial digest still catches a truncated or
    corrupted file: with n hex characters known, a wrong file passes with chance 16**-n (n >= 8).
    """

    algorithm: str  # a hashlib name: "sha256", "md5"
    prefix: str
    suffix: str = ""

    def __post_init__(self):
        if self.algorithm not in hashlib.algorithms_guaranteed:
            raise ValueError(f"unknown digest algorithm {self.algorithm!r}")
        known = self.prefix + self.suffix
        if len(known) < 8 or not re.fullmatch(r"[0-9a-f]+", known):
            raise ValueError(f"{self.algorithm} digest {known!r}: give at least 8 lowercase hex characters")
        if len(known) > self.full_length:
            raise ValueError(f"{self.algorithm} digest {known!r} is longer than {self.full_length} characters")

    @property
    def full_length(self) -> int:
        return hashlib.new(self.algorithm).digest_size * 2

    @property
    def is_full(self) -> bool:
        return len(self.prefix) == self.full_length

    def matches(self, hexdigest: str) -> bool:
        return hexdigest.startswith(self.prefix) and hexdigest.endswith(self.suffix)

    def __str__(self) -> str:
        if self.is_full:
            return self.prefix
        return f"{self.prefix}…{self.suffix} (the published digest, as far as it is recorded)"


def expected_checksums(sha256: str | None = None, md5: str | None = None,
                       sha256_prefix: str | None = None, sha256_suffix: str | None = None) -> list[Checksum]:
    """The checks a file must pass: full digests, or the known ends of a sha256 when no full one is given."""
    checks = []
    if sha256:
        if len(sha256) != 64:
            raise ValueError(f"sha256={sha256!r} is not a full 64-character digest; "
                             "pass the known ends as sha256_prefix / sha256_suffix instead")
        checks.append(Checksum("sha256", sha256.lower()))
    elif sha256_prefix or sha256_suffix:
        checks.append(Checksum("sha256", (sha256_prefix or "").lower(), (sha256_suffix or "").lower()))
    if md5:
        if len(md5) != 32:
            raise ValueError(f"md5={md5!r} is not a full 32-character digest")
        checks.append(Checksum("md5", md5.lower()))
    return checks


def file_digests(path: str | os.PathLike, algorithms: list[str], progress: bool = False) -> dict[str, str]:
    """Hex digests of a file for each algorithm, from one read of it."""
    path = Path(path)
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
                                     desc=f"verify {path.name}", disable=not progress, leave=False) as bar:
        while block := f.read(HASH_CHUNK):
            for hasher in hashers.values():
                hasher.update(block)
            bar.update(len(block))
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def verify(path: str | os.PathLike, checksums: list[Checksum], url: str | None = None,
           progress: bool = False, advice: str = "", what: str = "the archive") -> None:
    """Raise ChecksumError unless the file matches every checksum (a no-op when none is known);
    `what` names the file the checksum was published for, `advice` (what the user should do
    about it) ends the message."""
    if not checksums:
        return
    actual = file_digests(path, [c.algorithm for c in checksums], progress)
    for check in checksums:
        if not check.matches(actual[check.algorithm]):
            source = f" (downloaded from {url})" if url else ""
            message = (f"{path}{source}: {check.algorithm} is {actual[check.algorithm]}, expected {check}. "
                       f"The file is corrupt, truncated or a different version of {what}.")
            raise ChecksumError(f"{message} {advice}" if advice else message)


# --------------------------------------------------------------------------- the transfer


class _Transient(Exception):
    """A failure worth retrying: the next attempt resumes from the bytes already on disk."""


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _total_size(response, offset: int) -> int | None:
    """Size of the whole file, from Content-Range (206) or Content-Length (200), if the server said."""
    if response.status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match and match.group(3) != "*":
            return int(match.group(3))
    length = response.headers.get("Content-Length")
    if length is None:
        return None
    return int(length) + (offset if response.status == 206 else 0)


def offline_reason(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why `url` cannot be downloaded from this machine right now, said at once (None: it can be
    tried): HF_HUB_OFFLINE=1 is set (svar's and Hugging Face's switch for offline machines), or
    the URL's host (or the proxy the environment names for it) refuses, cannot be resolved or
    cannot be routed to. Saves the retries with back-off that a download would spend first."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE=1 is set, which says this machine is offline"
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host or ""):
        proxied = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxied.hostname, proxied.port or 80
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"{host}:{port} cannot be reached ({type(err).__name__}: {err})"
    return None


def _open(url: str, part: Path, offset: int, timeout: float, by_hand: str = ARCHIVE_BY_HAND):
    """Send the request (with `Range` when resuming); the response, or None when `part` is already whole."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            # `Range: bytes=N-` past the end: either an earlier run received every byte but
            # stopped before verifying, or `part` is stale (the remote file shrank)
            whole = re.match(r"bytes\s+\*/(\d+)", err.headers.get("Content-Range", ""))
            if whole and int(whole.group(1)) == offset:
                return None
            part.unlink()
            raise _Transient(f"HTTP 416: {part} ({offset} bytes) does not match the remote file; "
                             "restarting from byte 0") from None
        if 400 <= err.code < 500 and err.code not in RETRYABLE_CLIENT_ERRORS:
            raise DownloadError(
                f"{url}: the server answered HTTP {err.code} {err.reason}. Check the URL (the host may have "
                f"moved or removed the file), or {by_hand}.") from None
        raise _Transient(f"HTTP {err.code} {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:  # URLError, refused, reset, timeout
        raise _Transient(f"{type(err).__name__}: {err}") from None


def _attempt(url: str, part: Path, timeout: float, chunk: int, progress: bool, desc: str,
             by_hand: str = ARCHIVE_BY_HAND) -> None:
    """One request: append to `part` from its current size until the server's body ends.

    Returns once the body is complete (as far as Content-Length / Content-Range tell); raises
    _Transient for anything a retry may fix, DownloadError for what it cannot. Errors writing
    `part` (disk full, permissions) propagate: retrying the network would not help.
    """
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, part, offset, timeout, by_hand)
    if response is None:
        return
    with response:
        if response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink()
                raise _Transient(f"asked to resume at byte {offset}, the server sent "
                                 f"{response.headers.get('Content-Range')!r}; restarting from byte 0")
            mode = "ab"
        else:
            if offset:
                log.info("%s: the server ignores Range (HTTP %d); restarting from byte 0", url, response.status)
            offset, mode = 0, "wb"
        total = _total_size(response, offset)
        received = offset
        with open(part, mode) as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                           unit_divisor=1024, desc=desc, disable=not progress) as bar:
            while True:
                try:
                    block = response.read(chunk)
                except (OSError, http.client.HTTPException) as err:  # reset, timeout, bad chunking
                    raise _Transient(f"{type(err).__name__} after {received} bytes: {err}") from None
                if not block:
                    break
                out.write(block)
                received += len(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
    if total is not None and received != total:
        raise _Transient(f"short read: the connection closed after {received} of {total} bytes")


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, md5: str | None = None,
             retries: int = 5, backoff: float = 1.0, timeout: float = 60, chunk: int = 1 << 20,
             progress: bool = True, *, sha256_prefix: str | None = None,
             sha256_suffix: str | None = None, what: str = "the archive", by_hand: str = ARCHIVE_BY_HAND) -> Path:
    """Download `url` to `dest`, resuming and retrying; return `dest` once it verifies.

    `sha256` / `md5` are full digests; when only the ends of a sha256 are recorded, pass them
    as `sha256_prefix` / `sha256_suffix`. With no digest at all, completeness rests on the
    size the server announces.

    `retries` counts further attempts after a failed one. An attempt that takes `<dest>.part`
    further than it ever was resets the count, so a link that drops every few hundred MB still
    finishes, while one that makes no progress gives up after `retries` more attempts.
    Attempt k waits `backoff * 2**(k-1)` seconds first. `timeout` is the socket timeout in
    seconds: a server silent that long (while connecting or mid-body) counts as a failure.
    `what` names the file in a checksum error; `by_hand`, how to get it otherwise, ends the
    errors no retry can fix.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    checksums = expected_checksums(sha256, md5, sha256_prefix, sha256_suffix)
    if dest.exists():
        verify(dest, checksums, url, progress, advice=f"Delete {dest} to download it again.", what=what)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)

    def part_size() -> int:
        return part.stat().st_size if part.exists() else 0

    furthest, failures = part_size(), 0
    while True:
        try:
            _attempt(url, part, timeout, chunk, progress, dest.name, by_hand)
            break
        except _Transient as err:
            if part_size() > furthest:
                furthest, failures = part_size(), 0
            failures += 1
            if failures > retries:
                raise DownloadError(
                    f"{url}: giving up after {failures} failed attempt(s) in a row; last error: {err}. "
                    f"{part} keeps the {part_size()} bytes received: run again to resume, or {by_hand}.") from None
            delay = backoff * 2 ** (failures - 1)
            log.warning("%s: %s; retry %d of %d in %.1f s", url, err, failures, retries, delay)
            time.sleep(delay)

    try:
        verify(part, checksums, url, progress, advice=f"{part} was deleted: run again to download it afresh.",
               what=what)
    except ChecksumError:
        part.unlink()
        raise
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------- the official archives


@dataclass(frozen=True)
class ArchiveInfo:
    """One official dataset archive: where it is published and its digest, as far as it is recorded."""

    url: str
    description: str
    sha256: str | None = None
    sha256_prefix: str | None = None  # when only the ends of the sha256 are recorded
    sha256_suffix: str | None = None
    md5: str | None = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def checksums(self) -> list[Checksum]:
        return expected_checksums(self.sha256, self.md5, self.sha256_prefix, self.sha256_suffix)
