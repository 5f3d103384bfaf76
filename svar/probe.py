"""`svar probe`: check a user's own videos before indexing a dataset.

Decodes each video exactly as `svar index` does (`svar.manifest.probe_many`: every frame decoded,
PyAV first for a true frame count, decord where PyAV fails), so what the probe calls decodable is what the
benchmark will be able to read, and a broken file shows up here rather than hours into a run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from .manifest import probe_many

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv")
COLUMNS = ["path", "frames", "fps", "width", "height", "codec", "decoder", "status"]
OK = "ok"


def find_videos(paths) -> list[str]:
    """The files to probe: files given directly (whatever their extension, since the user named
    them), and files with a video extension found recursively in given folders, sorted per folder.

    A path that does not exist is kept, so that the probe reports it as a failed row.
    """
    found: list[str] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        else:
            found.append(str(path))
    return list(dict.fromkeys(found))  # a file named twice is probed once


def probe_paths(paths, workers: int = 1) -> pd.DataFrame:
    """One row per video: frames actually decoded, fps, size, codec, the decoder that read it,
    and `status` "ok" or why no decoder could read it."""
    videos = find_videos(paths)
    if not videos:
        raise FileNotFoundError(
            f"no video files in {', '.join(map(str, paths))}; looked for {' '.join(VIDEO_EXTENSIONS)}")
    rows = probe_many(videos, workers, desc="probe")
    frame = pd.DataFrame(rows)
    # the error names the file first; the path column already does
    frame["status"] = [OK if row["decodes"] else row["error"].removeprefix(f"{row['path']}: ") for row in rows]
    return frame[COLUMNS]


def summary_line(df: pd.DataFrame) -> str:
    n, ok = len(df), int((df["status"] == OK).sum())
    return f"{n} video{'' if n == 1 else 's'}, {ok} decodable"


def format_table(df: pd.DataFrame) -> str:
    """An aligned text table: numbers right-aligned, text left-aligned, and a failed video's
    measurements shown as "-" rather than zeros that could pass for real values."""
    numeric = {"frames", "fps", "width", "height"}

    def cell(row, column) -> str:
        value = row[column]
        if column in numeric and row["status"] != OK:
            return "-"
        if column == "fps":
            return f"{value:.2f}"
        return str(value)

    cells = [[cell(row, c) for c in COLUMNS] for _, row in df.iterrows()]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(COLUMNS)]

    def line(values) -> str:
        return "  ".join(v.rjust(w) if c in numeric else v.ljust(w)
                         for c, v, w in zip(COLUMNS, values, widths)).rstrip()

    # the status column comes last and can be a long error: underline only its header
    rule = ["-" * (len(c) if c == "status" else w) for c, w in zip(COLUMNS, widths)]
    return "\n".join([line(COLUMNS), line(rule), *(line(r) for r in cells)])


def main_probe(paths, csv: bool, workers: int) -> int:
    """Print the probe table (or CSV) and the summary line; 0 even when some videos fail,
    since reporting failures is the probe's job. With CSV, the summary goes to stderr so
    that stdout stays a clean CSV file."""
    df = probe_paths(paths, workers)
    if csv:
        df.to_csv(sys.stdout, index=False)
        print(summary_line(df), file=sys.stderr)
    else:
        print(format_table(df))
        print(summary_line(df))
    return 0
