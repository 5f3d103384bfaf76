"""`svar fetch-weights`: every weights file a config needs, listed or fetched at once.

`svar fetch-weights` fetches them all through the functions rules teacher_weights and
student_weights run, writing the same receipts in the same places (svar.weights_files), so
Snakemake finds the downloads done; `--list` prints each file's place, URL and checksum for a
machine without internet.
"""

from __future__ import annotations

from .config import grid_teachers, results_dir
from .student_weights import NAMED, pretrained_source, student_files
from .student_weights import weights_receipt as student_weights_receipt
from .teacher.backends import teacher_files
from .teacher.backends import weights_receipt as teacher_weights_receipt
from .teacher.weights import pretrained_file
from .weights_files import WeightFile, student_receipt, teacher_receipt


def _teachers(config: dict) -> list[dict]:
    """Each teacher section of the grid, its `pretrained` as a loadable source (`generated`: the
    checkpoint rule pretrain_teacher trains, which needs no download)."""
    return [{**teacher, "pretrained": pretrained_file(teacher["pretrained"], results_dir(config))}
            for _, teacher in grid_teachers(config)]


def required(config: dict) -> list[WeightFile]:
    """Every file a config's jobs read that has to be downloaded: each teacher's of the grid
    (`teacher`, then `teachers:`), then the student's; each file once."""
    out: list[WeightFile] = []
    for teacher in _teachers(config):
        out += teacher_files(teacher["model"], teacher["pretrained"], teacher["cache_dir"])
    student = config["student"]
    if pretrained_source(student["pretrained"]) in NAMED:
        out += student_files(student["arch"], student["pretrained"], student["weights_dir"])
    unique = {}
    for entry in out:
        unique.setdefault(entry.path, entry)
    return list(unique.values())


def fetch_all(config: dict, results: str = "results") -> list[str]:
    """Fetch every file `required` lists, as rules teacher_weights and student_weights do (the
    same functions, the same receipts); returns the receipts written."""
    receipts = []
    for teacher in _teachers(config):
        out = teacher_receipt(teacher, results)
        if teacher_files(teacher["model"], teacher["pretrained"], teacher["cache_dir"]) and out not in receipts:
            teacher_weights_receipt(teacher["model"], teacher["pretrained"], teacher["cache_dir"], out)
            receipts.append(out)
    student = config["student"]
    if pretrained_source(student["pretrained"]) in NAMED:
        out = student_receipt(student, results)
        student_weights_receipt(student["arch"], student["pretrained"], student["weights_dir"], out)
        receipts.append(out)
    return receipts


def table(entries: list[WeightFile]) -> str:
    """The files as a Markdown table: what to place where, from which URL, with which checksum."""
    lines = ["| weights (config key) | file | folder (config key) | URL | sha256 |", "|---|---|---|---|---|"]
    for e in entries:
        name = " or ".join(f"`{n}`" for n in e.names)
        if e.sha256:
            digest = f"`{e.sha256}`" if len(e.sha256) == 64 else f"starts with `{e.sha256}` (the file's name says)"
        else:
            digest = "not in open_clip's or timm's registry (the Hub shows it on the file's page)" if e.repo else "not published"
        lines.append(f"| {e.what} (`{e.key}`) | {name} | `{e.folder}` (`{e.folder_key}`) | {e.url} | {digest} |")
    return "\n".join(lines) + "\n"
