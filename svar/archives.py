"""Extract the datasets' archives (ZIP and RAR): safely, atomically and resumably.

Safety. An archive can name members that land outside the folder it is extracted into
(`../x`, `/etc/x`, a symlink `up -> ..` followed by `up/x`). Every member is checked before
anything is written, and one such member refuses the whole archive (UnsafeArchiveError).
Members are then extracted one by one, copying their bytes into files created here, never
with `extractall`: a link in an archive is never created as a link. A link that stays inside
the target is skipped (logged); a RAR hard link or file copy becomes a copy of its file.

Atomic and resumable. Members are written under `<target>.partial`, each file atomically,
and the folder is renamed to `<target>` at the end: `<target>` exists only once complete. A
rerun after an interruption keeps the files already written; one where `<target>` exists
does nothing.

RAR. The `rarfile` package reads RAR3 and RAR5 headers itself and decodes compressed data
with an external tool it finds on PATH (unrar, unar, 7z, bsdtar). On Debian, `unar` reads
RAR3 and RAR5, solid archives included; see RAR_DECODER_HINT. rarfile decodes each member
with a separate run of the tool, so a *solid* RAR (every member compressed as one stream) is
decoded from its start for each member: fine for small archives, slow for huge solid ones.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import rarfile
from tqdm import tqdm

from .atomic import atomic_path

log = logging.getLogger(__name__)

COPY_CHUNK = 1 << 20
MAX_LINK_HOPS = 40  # as Linux's own limit: more symlinks on one path is a loop
INNER_ARCHIVE_SUFFIXES = (".rar", ".zip")
OUTER_FOLDER = ".outer"  # where extract_nested unpacks the outer archive, inside the staging folder

RAR_DECODER_HINT = (
    "Install a RAR decoder that the rarfile package can use: on Debian/Ubuntu `apt-get install unar` "
    "(reads RAR3 and RAR5, solid archives included); elsewhere unrar or unar. Debian's "
    "libarchive-tools (bsdtar) cannot read solid RAR archives, its 7zip / p7zip-full lack the RAR "
    "codec, and unrar-free's `unrar` does not accept the options rarfile passes.")


class ExtractionError(RuntimeError):
    """An archive could not be extracted; the message names the archive and what to do."""


class UnsafeArchiveError(ExtractionError):
    """An archive has members that would land outside the target folder; nothing was extracted."""


@dataclass
class _Member:
    """One archive member, classified, with its path normalised inside the target."""

    name: str  # as stored in the archive
    parts: tuple[str, ...] | None  # path components inside the target; None if absolute or leaving it
    kind: str  # "file", "dir", "symlink", or "hardlink" (a RAR5 hard link or file copy)
    size: int
    link_target: str | None  # for symlinks: relative to the link's folder; for hard links: to the root
    info: Any  # the ZipInfo / RarInfo that opens it


def _normalise(path: str, base: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Components of `path` taken relative to `base`, with `.` and `..` resolved.

    None when the path is absolute (`/x`, `C:x`, `\\\\?\\...`) or its `..` climb above the target
    root. Backslashes count as separators, as archives made on Windows use them.
    """
    path = path.replace("\\", "/")
    if path.startswith("/") or (len(path) >= 2 and path[1] == ":" and path[0].isalpha()):
        return None
    parts = list(base)
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return tuple(parts)


def _resolve(parts: tuple[str, ...], symlinks: dict[tuple[str, ...], str],
             hops: int = 0) -> tuple[str, ...] | None:
    """Where `parts` would land if each symlink member on its way were followed; None if outside the target."""
    for end in range(1, len(parts) + 1):
        link = parts[:end]
        if link in symlinks:
            target = _normalise(symlinks[link], base=link[:-1])
            if target is None or hops >= MAX_LINK_HOPS:
                return None
            return _resolve(target + parts[end:], symlinks, hops + 1)
    return parts


def _unsafe_reason(member: _Member, symlinks: dict[tuple[str, ...], str]) -> str | None:
    """Why extracting `member` could write outside the target, or None when it cannot."""
    if member.parts is None:
        return "an absolute path or `..` that leaves the target"
    if not member.parts and member.kind != "dir":
        return "an empty path"
    if member.kind == "symlink" and _resolve(member.parts, symlinks) is None:
        return f"a symlink to {member.link_target!r}, outside the target"
    if member.kind == "hardlink":
        target = _normalise(member.link_target)
        if target is None or _resolve(target, symlinks) is None:
            return f"a hard link to {member.link_target!r}, outside the target"
    if _resolve(member.parts, symlinks) is None:
        return "a path through a symlink that leads outside the target"
    return None


def _check_members(archive: Path, members: list[_Member]) -> None:
    """Raise UnsafeArchiveError, naming each offending member, if any could land outside the target."""
    symlinks = {m.parts: m.link_target for m in members if m.kind == "symlink" and m.parts}
    problems = [f"{m.name!r} ({reason})" for m in members if (reason := _unsafe_reason(m, symlinks))]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UnsafeArchiveError(
            f"{archive}: refused, nothing extracted: {len(problems)} member(s) would land outside the target "
            f"folder: {shown}. An official dataset archive has none; fetch it again from its official source.")


# --------------------------------------------------------------------------- reading ZIP and RAR


def _members(archive, kind_of) -> list[_Member]:
    """Every member of an open archive; kind_of(archive, info) -> (kind, link target or None)."""
    members = []
    for info in archive.infolist():
        kind, link_target = kind_of(archive, info)
        members.append(_Member(info.filename, _normalise(info.filename), kind, info.file_size, link_target, info))
    return members


def _zip_kind(archive: zipfile.ZipFile, info) -> tuple[str, str | None]:
    if stat.S_ISLNK(info.external_attr >> 16):  # a symlink stores its target as its data
        return "symlink", archive.read(info).decode("utf-8", "surrogateescape")
    return ("dir" if info.is_dir() else "file"), None


def _rar_kind(archive: rarfile.RarFile, info) -> tuple[str, str | None]:
    if info.file_redir:  # RAR5 links: (type, flags, target)
        redir_type, _, link_target = info.file_redir
        copies = (rarfile.RAR5_XREDIR_HARD_LINK, rarfile.RAR5_XREDIR_FILE_COPY)
        return ("hardlink" if redir_type in copies else "symlink"), link_target
    if info.is_symlink():  # a RAR3 symlink stores its target as its data
        return "symlink", archive.read(info).decode("utf-8", "surrogateescape")
    return ("dir" if info.is_dir() else "file"), None


def _zip_members(archive: zipfile.ZipFile) -> list[_Member]:
    return _members(archive, _zip_kind)


def _rar_members(archive: rarfile.RarFile) -> list[_Member]:
    return _members(archive, _rar_kind)


def rar_decoder() -> str:
    """The command rarfile will decode RAR data with; ExtractionError naming what to install if none works."""
    try:
        return rarfile.tool_setup().get_cmdline("check_cmd", None)[0]
    except rarfile.RarCannotExec:
        raise ExtractionError(f"No RAR decoder found on PATH (unrar, unar, 7z, 7zz, bsdtar). "
                              f"{RAR_DECODER_HINT}") from None


class _Archive:
    """A ZIP or RAR archive as a list of classified members, each readable as a byte stream."""

    def __init__(self, path: Path):
        self.path = path
        if not path.is_file():
            raise ExtractionError(f"{path}: no such archive; fetch it first (svar.datasets.fetch_archive).")
        if rarfile.is_rarfile(path):
            self.decoder = rar_decoder()
            opener, list_members = rarfile.RarFile, _rar_members
        elif zipfile.is_zipfile(path):
            self.decoder = None
            opener, list_members = zipfile.ZipFile, _zip_members
        else:
            raise ExtractionError(f"{path}: neither a ZIP nor a RAR archive (or truncated at its start); "
                                  "delete it and fetch it again.")
        try:
            self._handle = opener(path)
        except (rarfile.Error, zipfile.BadZipFile) as err:
            raise self._unreadable(err) from None
        try:
            self.members = list_members(self._handle)
        except (rarfile.Error, zipfile.BadZipFile) as err:
            self._handle.close()
            raise self._unreadable(err) from None

    def _unreadable(self, err: Exception) -> ExtractionError:
        return ExtractionError(f"{self.path}: unreadable archive ({type(err).__name__}: {err}); it may be "
                               "truncated or corrupt: delete it and fetch it again.")

    def open(self, member: _Member) -> BinaryIO:
        return self._handle.open(member.info)

    def read_error(self, member: _Member, err: Exception) -> ExtractionError:
        """The error to raise when a member's data cannot be decoded, with what to try."""
        advice = "The archive may be corrupt or truncated: delete it and fetch it again."
        if self.decoder:
            advice = f"The RAR decoder in use is {self.decoder}. {advice} {RAR_DECODER_HINT}"
        return ExtractionError(f"{self.path}: cannot read member {member.name!r} ({type(err).__name__}: {err}). "
                               f"{advice}")

    def __enter__(self) -> _Archive:
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()


# --------------------------------------------------------------------------- extraction


def _staging(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _write_member(archive: _Archive, member: _Member, dest: Path, bar: tqdm) -> None:
    with atomic_path(dest) as tmp, open(tmp, "wb") as out:
        try:
            with archive.open(member) as src:
                while block := src.read(COPY_CHUNK):
                    out.write(block)
                    bar.update(len(block))
        except (rarfile.Error, zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise archive.read_error(member, err) from None


def extract(archive: str | os.PathLike, target_dir: str | os.PathLike, progress: bool = True) -> list[Path]:
    """Extract a ZIP or RAR archive into `target_dir`; return the files under it, sorted.

    Does nothing (but list the files) when `target_dir` exists. Raises UnsafeArchiveError,
    having written nothing, for an archive with a member that could land outside
    `target_dir`, and ExtractionError when the archive cannot be read.
    """
    archive, target = Path(archive), Path(target_dir)
    if target.exists():
        return _files_under(target)
    with _Archive(archive) as opened:
        _check_members(archive, opened.members)
        staging = _staging(target)
        files = [m for m in opened.members if m.kind in ("file", "hardlink")]
        for member in opened.members:
            if member.kind == "symlink":
                log.warning("%s: skipped symlink %r -> %r (links are not created)",
                            archive, member.name, member.link_target)
            elif member.kind == "dir":
                staging.joinpath(*member.parts).mkdir(parents=True, exist_ok=True)
        with tqdm(total=sum(m.size for m in files), unit="B", unit_scale=True, unit_divisor=1024,
                  desc=f"extract {archive.name}", disable=not progress) as bar:
            for member in files:
                dest = staging.joinpath(*member.parts)
                if dest.is_file() and dest.stat().st_size == member.size:  # written by an interrupted run
                    bar.update(member.size)
                    continue
                _write_member(opened, member, dest, bar)
    staging.mkdir(parents=True, exist_ok=True)  # an archive without members still yields its folder
    written = {staging.joinpath(*m.parts) for m in files}
    for leftover in staging.rglob(".*.tmp"):  # atomic_path's temporary files from an interrupted run
        if leftover not in written:
            leftover.unlink()
    staging.rename(target)
    return _files_under(target)


def _extract_inner(inner: Path, dest: Path) -> None:
    """Extract one inner archive to `dest`, without repeating a folder named like `dest`.

    HMDB51's `brush_hair.rar` holds `brush_hair/*.avi`: that lands as `dest/*.avi`, not
    `dest/brush_hair/*.avi`. Atomic: `dest` appears only once complete.
    """
    unpacked = dest.with_name(f".{dest.name}.unpacked")
    if not dest.exists():
        extract(inner, unpacked, progress=False)
        entries = list(unpacked.iterdir())
        if len(entries) == 1 and entries[0].is_dir() and entries[0].name == dest.name:
            entries[0].rename(dest)
        else:
            unpacked.rename(dest)
    if unpacked.exists():  # emptied by the move above, in this run or in an interrupted one
        unpacked.rmdir()


def extract_nested(archive: str | os.PathLike, target_dir: str | os.PathLike,
                   progress: bool = True) -> list[Path]:
    """Extract an archive of archives into `target_dir/<inner stem>/`; return the files, sorted.

    For HMDB51's hmdb51_org.rar, a RAR of 51 RARs, one per class. The outer archive is
    extracted into a hidden folder inside `<target>.partial`; then each inner archive (.rar,
    .zip) is extracted and deleted, so a rerun after an interruption skips the ones done.
    Other files in the outer archive are kept, at their place. Safety checks as in `extract`.
    """
    target = Path(target_dir)
    if target.exists():
        return _files_under(target)
    staging = _staging(target)
    outer = staging / OUTER_FOLDER
    extract(archive, outer, progress)
    inner_archives = [p for p in _files_under(outer) if p.suffix.lower() in INNER_ARCHIVE_SUFFIXES]
    for inner in tqdm(inner_archives, desc=f"extract {Path(archive).name}: inner archives", unit="archive",
                      disable=not progress):
        relative = inner.relative_to(outer)
        _extract_inner(inner, staging / relative.parent / relative.stem)
        inner.unlink()
    for other in _files_under(outer):
        moved = staging / other.relative_to(outer)
        moved.parent.mkdir(parents=True, exist_ok=True)
        os.replace(other, moved)
    shutil.rmtree(outer)
    staging.rename(target)
    return _files_under(target)
