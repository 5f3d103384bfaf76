"""The manifest: one row per video with its class, split membership and what decoding found.

Reads UCF101's official split format (`classInd.txt`, `trainlist0k.txt`, `testlist0k.txt`),
which the generated dataset shares. Every video is decoded once, in worker processes; one that
no decoder can read is kept in the manifest with `decodes = False` and its reason, written to
the exclusions file, and left out by every later stage.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from .atomic import write_csv
from .readers import read_csv
from .video import VideoDecodeError, map_videos, probe_video

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "video_id", "path", "class_name", "label", "frames", "fps", "width", "height",
    "codec", "decoder", "decodes", "error",
]


class SplitFormatError(ValueError):
    """A split file does not follow the official format; the message names file and line."""


def read_class_index(path: Path) -> list[str]:
    """`classInd.txt`: lines `<1-based index> <ClassName>`; returns names in label order."""
    names = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SplitFormatError(f"{path}:{lineno}: expected '<index> <ClassName>', got {line!r}")
        names[int(parts[0])] = parts[1]
    if sorted(names) != list(range(1, len(names) + 1)):
        raise SplitFormatError(f"{path}: class indices must run 1..N without gaps")
    return [names[i] for i in range(1, len(names) + 1)]


def split_entries(path: Path) -> list[tuple[str, int]]:
    """`trainlist0k.txt` / `testlist0k.txt` lines `Class/video.avi [label]`: (video, line number).
    A file name may hold spaces: the label, when there is one, is the last field."""
    entries = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        fields = line.rsplit(None, 1)
        rel = fields[0] if len(fields) == 2 and fields[1].isdigit() else line
        if "/" not in rel:
            raise SplitFormatError(f"{path}:{lineno}: expected 'Class/video.avi [label]', got {line!r}")
        entries.append((rel, lineno))
    return entries


def read_split_list(path: Path) -> list[str]:
    return [rel for rel, _ in split_entries(path)]


# a video's role in split k, by the list that names it; unusedlist0k.txt is svar's addition to
# UCF101's format, for HMDB51's videos that split k neither trains nor tests on
SPLIT_LISTS = {"train": "trainlist0{}.txt", "test": "testlist0{}.txt", "unused": "unusedlist0{}.txt"}


def split_files(splits_dir: Path) -> dict[int, dict[str, Path]]:
    """The official splits present: {k: {"train": trainlist0k.txt, "test": testlist0k.txt, and
    "unused": unusedlist0k.txt where there is one}}."""
    found = {}
    for k in range(1, 10):
        lists = {role: splits_dir / name.format(k) for role, name in SPLIT_LISTS.items()}
        if lists["train"].exists() and lists["test"].exists():
            found[k] = {role: path for role, path in lists.items() if path.exists()}
    if not found:
        raise SplitFormatError(f"{splits_dir}: no trainlist0k.txt/testlist0k.txt pair found")
    return found


LIST_SUFFIXES = (".txt", ".csv")  # split lists and captions: read whole, so digested by content


def files_digest(files) -> str:
    """A digest of files as a job reads them: each one's path and, for a list (.txt, .csv), its
    bytes, for a video its size and modification time (reading every video at each DAG build
    would cost a dataset's worth of disk); "-" for one that is missing. sha256-prefixed; the
    workflow passes it as a param, so a file added, replaced, removed or edited reruns the jobs
    that read it, and a list saved back unchanged does not."""
    import hashlib

    digest = hashlib.sha256()
    for path in files:
        try:
            st = os.stat(path)
            stamp = (hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).suffix in LIST_SUFFIXES
                     else f"{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            stamp = "-"
        digest.update(f"{path}\0{stamp}\n".encode())
    return "sha256:" + digest.hexdigest()


def index_inputs(root: str | Path) -> list[Path]:
    """What `svar index` reads of a dataset folder: the split lists and the videos they name
    (a video the lists do not name is not indexed). [] before the folder exists."""
    root = Path(root)
    if not (root / "splits" / "classInd.txt").is_file():
        return []
    lists = [root / "splits" / "classInd.txt", *(f for k in split_files(root / "splits").values() for f in k.values())]
    named = sorted({rel for f in lists[1:] for rel, _ in split_entries(f)})
    return [*lists, *(root / "videos" / rel for rel in named)]


def _probe_row(path: str) -> dict:
    try:
        info = probe_video(path)
        return {**info.as_dict(), "decodes": True, "error": ""}
    except VideoDecodeError as exc:
        return {"path": path, "frames": 0, "fps": 0.0, "width": 0, "height": 0, "codec": "",
                "decoder": "", "decodes": False, "error": str(exc)}


def probe_many(paths: list[str], workers: int, desc: str = "decode") -> list[dict]:
    """Probe videos in worker processes, in input order, with a progress bar."""
    return map_videos(_probe_row, paths, workers, desc)


def build_manifest(videos_dir: str | Path, splits_dir: str | Path, workers: int = 1) -> pd.DataFrame:
    videos_dir, splits_dir = Path(videos_dir), Path(splits_dir)
    classes = read_class_index(splits_dir / "classInd.txt")
    label_of = {name: i for i, name in enumerate(classes)}
    membership: dict[str, dict[int, str]] = {}
    named_at: dict[str, tuple[str, int]] = {}  # where each video is first named, for the error below
    for k, lists in split_files(splits_dir).items():
        for role, file in lists.items():
            for rel, lineno in split_entries(file):
                membership.setdefault(rel, {})[k] = role
                named_at.setdefault(rel, (str(file), lineno))
    on_disk = sorted(p.relative_to(videos_dir).as_posix() for p in videos_dir.glob("*/*") if p.is_file())
    missing = sorted(set(membership) - set(on_disk), key=lambda r: named_at[r])
    if missing:
        raise FileNotFoundError(
            "{}:{}: names {}, which is not under {}".format(*named_at[missing[0]], missing[0], videos_dir)
            + (f" ({len(missing) - 1} more such lines)" if len(missing) > 1 else "")
            + "; run the dataset stage again, or fix the list")
    rels = [r for r in on_disk if r in membership]
    unknown = sorted({r.split("/")[0] for r in rels} - set(label_of))
    if unknown:
        raise SplitFormatError(f"{splits_dir / 'classInd.txt'}: classes {unknown} have videos but no index")
    rows = probe_many([os.path.join(videos_dir, r) for r in rels], workers)
    frame = pd.DataFrame(rows)
    frame.insert(0, "video_id", [Path(r).stem for r in rels])
    frame["class_name"] = [r.split("/")[0] for r in rels]
    frame["label"] = [label_of[c] for c in frame["class_name"]]
    frame = frame[MANIFEST_COLUMNS]
    for k in sorted(split_files(splits_dir)):
        frame[f"split{k}"] = [membership[r].get(k, "") for r in rels]
    if frame["video_id"].duplicated().any():
        raise SplitFormatError(f"{videos_dir}: video stems must be unique across classes")
    return frame


def write_index(videos_dir, splits_dir, manifest_out, exclusions_out, classes_out, workers=1) -> pd.DataFrame:
    frame = build_manifest(videos_dir, splits_dir, workers)
    bad = frame[~frame["decodes"]]
    for _, row in bad.iterrows():
        log.warning("excluded %s: %s", row["path"], row["error"])
    log.info("%d videos indexed, %d decodable, %d excluded", len(frame), len(frame) - len(bad), len(bad))
    write_csv(exclusions_out, bad[["video_id", "path", "error"]].rename(columns={"error": "reason"}))
    write_csv(manifest_out, frame)
    classes = read_class_index(Path(splits_dir) / "classInd.txt")
    write_csv(classes_out, pd.DataFrame({"label": range(len(classes)), "class_name": classes}))
    return frame


def load_manifest(path: str | Path, decodable_only: bool = True, videos: bool = False) -> pd.DataFrame:
    """The manifest `svar index` wrote; with `videos`, check that its video paths resolve from
    here (they are relative to the folder the index ran in: the workflow's)."""
    frame = read_csv(path, "manifest", "index")
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a svar manifest (missing columns {missing}); run `svar index`")
    if decodable_only:
        frame = frame[frame["decodes"].astype(str) == "True"].reset_index(drop=True)
    if videos and len(frame) and not os.path.exists(frame["path"].iloc[0]):
        first = frame["path"].iloc[0]
        where = (f"relative to the folder `svar index` ran in, which is not this one ({os.getcwd()}): run from "
                 "there (the workflow's folder)") if not os.path.isabs(first) else "gone: run `svar index` again"
        raise FileNotFoundError(f"{path}: its videos (e.g. {first}) are {where}")
    return frame
