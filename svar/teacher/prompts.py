"""Class-name prompts for the teacher's text encoder.

`teacher.templates` is a list of templates, each with one `{}` for the class words, or the name
of a prompt set stored once in svar/data/prompts/<name>.txt (one template per line; `#`
comments), e.g. `clip_ucf101`: CLIP's 48 UCF101 prompts.
"""

from __future__ import annotations

import re
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "data" / "prompts"
TEMPLATE = re.compile(r"^[^{}]*\{\}[^{}]*$")  # exactly one {} (the schema's pattern too)


def prompt_set_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in PROMPTS_DIR.glob("*.txt")))


def prompt_set(name: str) -> tuple[str, ...]:
    path = PROMPTS_DIR / f"{name}.txt"
    if not path.is_file():
        raise ValueError(f"teacher.templates: {name!r} is neither a template with one {{}} nor a stored prompt set "
                         f"({', '.join(prompt_set_names())}, in {PROMPTS_DIR})")
    lines = [line.strip() for line in path.read_text().splitlines()]
    return tuple(line for line in lines if line and not line.startswith("#"))


def resolve_templates(value) -> tuple[str, ...]:
    """The templates a config value names: a prompt set's name, or templates (a list, or one
    string with {}); a list may mix templates and set names."""
    items = [value] if isinstance(value, str) else list(value)
    templates: list[str] = []
    for item in items:
        if "{" in item or "}" in item:
            if not TEMPLATE.match(item):
                raise ValueError(f"teacher.templates: {item!r} must hold exactly one {{}} (where the class words go)")
            templates.append(item)
        else:
            templates.extend(prompt_set(item))
    if not templates:
        raise ValueError("teacher.templates: no templates")
    return tuple(templates)


def class_text(folder: str) -> str:
    """A class folder's name as words a text encoder can read: `ApplyEyeMakeup` -> `apply eye
    makeup` (UCF101's CamelCase), `brush_hair` -> `brush hair` (HMDB51's)."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", folder)
    return " ".join(w.lower() for w in words) if words else folder


def class_prompts(class_name: str, templates) -> list[str]:
    return [t.format(class_text(class_name)) for t in templates]
