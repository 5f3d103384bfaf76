"""The weights files a config needs from the internet, where each goes, and fetching them all.

A teacher's open_clip weights (a pretrained tag of `teacher` or `teachers:`, or an hf-hub: model)
and the student's torchvision or timm weights (student.pretrained kinetics400 or imagenet) are
downloaded once, where there is internet, into the config's folders (teacher.cache_dir,
student.weights_dir); every job reads them from there and never downloads. Each file has one
place: `<teacher.cache_dir>/<Hugging Face repo>/<file>` for open_clip's, `<student.weights_dir>/
<torchvision's file name>` for torchvision's, `<student.weights_dir>/<Hugging Face repo>/<file>`
for timm's. So a node without internet can be given them by hand: `svar fetch-weights --list`
prints each file's place, the URL to copy it from and the published checksum where the registry
publishes one (torchvision's file names carry the first hex digits of their sha256; open_clip's
and timm's registries name Hugging Face files, no digest).

This module says what a weights file is and where its receipt goes; svar.teacher.weights and
svar.student_weights list a teacher's and a student's files, and svar.fetch_weights gathers a
config's and fetches them (`svar fetch-weights`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# the command that fetches every weight of a config (svar fetch-weights), for the error messages
FETCH_COMMAND = "svar fetch-weights --configfile <your config>"


@dataclass(frozen=True)
class WeightFile:
    """One file of downloaded weights: which config key asks for it (`key`) and which names its
    folder (`folder_key`), what it is in words, where it lies (`folder`/`names[0]`; any of
    `names` is accepted there), where it is published (`url`, from `repo` on the Hugging Face hub
    when `repo` is set) and its published sha256 (whole or its first hex digits; "" when the
    registry publishes none)."""

    key: str
    folder_key: str
    what: str
    folder: Path
    names: tuple[str, ...]
    url: str
    sha256: str = ""
    repo: str = ""
    rule: str = ""

    @property
    def path(self) -> Path:
        return self.folder / self.names[0]

    def placed(self) -> Path | None:
        """The file where it belongs, under any of its names; None when it is not there."""
        for name in self.names:
            if (self.folder / name).is_file():
                return self.folder / name
        return None

    def place(self) -> str:
        """Where the file goes, in words: its full path (and the other names accepted there)."""
        others = f" (or {', '.join(self.names[1:])} in that folder)" if len(self.names) > 1 else ""
        return f"{os.path.abspath(self.path)}{others}"

    def by_hand(self) -> str:
        digest = f" (its sha256 starts with {self.sha256})" if self.sha256 else ""
        return f"copy {self.url}{digest} to {os.path.abspath(self.path)} by hand"

    def missing(self, who: str) -> FileNotFoundError:
        """The error of a job that finds the file missing and never downloads (`who` does not)."""
        return FileNotFoundError(
            f"{self.key}: {self.what}: {self.place()} does not exist ({self.folder_key} holds it), and {who} "
            f"never downloads. Fetch it where there is internet ({FETCH_COMMAND}, or rule {self.rule}) with "
            f"the same {self.folder_key}, or {self.by_hand()}")

    def unreachable(self, reason: str):
        """The error of a fetch on a machine that cannot download: said at once, with what to do."""
        from .download import DownloadError

        return DownloadError(
            f"{self.key}: cannot download {self.what} from {self.url}: {reason}. Run {FETCH_COMMAND} on a "
            f"machine with internet (a login node) with the same {self.folder_key}, or {self.by_hand()}")


def teacher_receipt(teacher: dict, results: str = "results") -> str:
    """The receipt rule teacher_weights writes for a teacher: <model>__<pretrained>.json."""
    from .config import safe_name

    return f"{results}/teacher_weights/{safe_name(teacher['model'])}__{safe_name(teacher['pretrained'])}.json"


def student_receipt(student: dict, results: str = "results") -> str:
    """The receipt rule student_weights writes for the student: <arch>__<pretrained>.json."""
    from .config import safe_name

    return f"{results}/student_weights/{safe_name(student['arch'])}__{safe_name(student['pretrained'])}.json"
