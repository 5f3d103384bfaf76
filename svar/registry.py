"""Registries: the one place each kind of named thing (methods, students, datasets, split
conventions, the teacher's backends and frame-sampling modes, the student's clip-sampling modes) is listed.

Each kind has one `Registry` in the module that defines its members, filled by a decorator
where each member is defined (`@METHODS.register`). Everything else that names members takes
the names from there: the config schema's enums (svar.config), the CLI's choices (svar.cli),
Snakemake's wildcard constraints (workflow/rules/common.smk). `REGISTRY_MODULES` says which
module holds which registry, so a caller can reach one by its kind without importing the others
(importing the method registry imports torch; the split conventions do not).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

# kind -> (module, attribute): where each registry lives
REGISTRY_MODULES = {
    "method": ("svar.methods", "METHODS"),
    "student": ("svar.students", "STUDENTS"),
    "dataset": ("svar.datasets", "DATASETS"),
    "split_convention": ("svar.splits", "SPLIT_CONVENTIONS"),
    "pool": ("svar.splits", "POOLS"),
    "sampling_mode": ("svar.teacher.sampling", "SAMPLING_MODES"),
    "teacher_backend": ("svar.teacher.backends", "TEACHER_BACKENDS"),
    "clip_sampling": ("svar.clips.sampling", "CLIP_SAMPLINGS"),
    "distill_loss": ("svar.methods.distillation", "DISTILL_LOSSES"),
    "pseudo_label_source": ("svar.methods.terms", "PSEUDO_LABEL_SOURCES"),
    "teacher_pseudo_label": ("svar.methods.terms", "TEACHER_PSEUDO_LABELS"),
    "threshold_mode": ("svar.methods.terms", "THRESHOLD_MODES"),
}
# name lists derived from the registries or the package's data, not registries of their own
DERIVED_NAMES = {
    "video_archive": ("svar.datasets", "video_archive_names"),   # "" and each dataset's video archives
    "archive": ("svar.datasets", "archive_names"),               # every archive any dataset is built from
    "prompt_set": ("svar.teacher.prompts", "prompt_set_names"),  # svar/data/prompts/*.txt
}


class Registry:
    """Named members of one kind, in registration order.

    `config_key` is the configuration key whose values name members (e.g. `student.arch`): an
    unknown name is reported with that key and the names there are.
    """

    def __init__(self, kind: str, config_key: str):
        self.kind, self.config_key = kind, config_key
        self._members: dict[str, object] = {}

    def register(self, member=None, *, name: str | None = None):
        """Decorator: `@R.register` (the member's `name` attribute, else its `__name__`) or
        `@R.register(name="x")`."""

        def add(obj):
            key = name or getattr(obj, "name", None) or obj.__name__
            if key in self._members:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._members[key] = obj
            return obj

        return add(member) if member is not None else add

    def names(self) -> tuple[str, ...]:
        return tuple(self._members)

    def __getitem__(self, name: str):
        try:
            return self._members[name]
        except KeyError:
            raise ValueError(f"{self.config_key}: unknown {self.kind} {name!r}; choose from "
                             f"{', '.join(self._members)}") from None

    def __contains__(self, name) -> bool:
        return name in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def items(self):
        return self._members.items()


def registry(kind: str) -> Registry:
    """The registry of one kind (imports the module that defines it)."""
    module, attribute = REGISTRY_MODULES[kind]
    return getattr(importlib.import_module(module), attribute)


class LazyChoices:
    """argparse `choices` taken from a registry only when the argument is parsed or help is
    printed, so that building the CLI parser imports no registry (and so no torch)."""

    def __init__(self, names: Callable[[], tuple[str, ...]]):
        self._names = names

    def __contains__(self, value) -> bool:
        return value in self._names()

    def __iter__(self):
        return iter(self._names())

    def __repr__(self) -> str:  # argparse's "invalid choice" message
        return repr(list(self._names()))


def names(kind: str) -> tuple[str, ...]:
    """The names of one kind: a registry's members, or a derived list (DERIVED_NAMES)."""
    if kind in DERIVED_NAMES:
        module, function = DERIVED_NAMES[kind]
        return tuple(getattr(importlib.import_module(module), function)())
    return registry(kind).names()


def lazy_choices(kind: str, metavar: str) -> dict:
    """add_argument's `choices` and `metavar` for one kind's names. The metavar is what keeps
    them lazy: without one, argparse iterates the choices to build it when the argument is
    added."""
    return {"choices": LazyChoices(lambda: names(kind)), "metavar": metavar}
