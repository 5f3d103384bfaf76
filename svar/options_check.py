"""A subcommand's JSON options (`svar train --options`, `svar clip-cache --options`, `svar plan
--config-json`) checked before it runs: they are a part of the workflow config, so they are
checked against the config's schema restricted to the keys the subcommand reads, the keys
derived from the same function that builds the options (svar.trainer.options_for,
svar.clips.cache_parts.cache_reads, svar.plan.plan_reads), never a list written here. Every key that
is missing or of the wrong type is named in one error, with its dotted path and expected type.
"""

from __future__ import annotations

import argparse
import functools
import json
from typing import Any, Callable

from .config import SCHEMA_PATH, defaults, merge, schema

# a key absent from the options (a sentinel: a present key may hold None)
_ABSENT = object()


def json_object(text: str) -> dict:
    """argparse type of a JSON options argument: a JSON object, or argparse's error (exit 2)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a JSON object of config sections, not a {type(value).__name__}")
    return value


def node_of(dotted: str) -> dict:
    """The schema of one key, its `$ref` resolved."""
    root = schema()
    node = root
    for part in dotted.split("."):
        node = node["properties"][part]
        if "$ref" in node:
            target = root
            for step in node["$ref"].lstrip("#/").split("/"):
                target = target[step]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def leaf_keys(dotted: str) -> list[str]:
    """A key the options must hold, as leaves: a whole section ("distill") is each key it requires."""
    node = node_of(dotted)
    if node.get("type") == "object" and "properties" in node:
        return [leaf for key in node.get("required", node["properties"]) for leaf in leaf_keys(f"{dotted}.{key}")]
    return [dotted]


def expected(node: dict) -> str:
    """A schema node's type in words: "number", "array of integer", "one of ['cosine', 'mse']"."""
    if "enum" in node:
        return f"one of {node['enum']}"
    alternatives = node.get("anyOf") or node.get("oneOf")
    if alternatives:
        return " or ".join(expected(alt) for alt in alternatives)
    kind = node.get("type", "any value")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and isinstance(node.get("items"), dict):
        return f"array of {expected(node['items'])}"
    return kind


def _value(options: dict, dotted: str):
    """The value at a dotted key, _ABSENT when missing, or (the key of) the first part that is not
    an object."""
    value: Any = options
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(value, dict):
            return ".".join(parts[:i]), value
        if part not in value:
            return dotted, _ABSENT
        value = value[part]
    return dotted, value


def problems(options: dict, keys) -> list[str]:
    """`key: what is wrong` for each key of `keys` (dotted, whole sections allowed) the options
    lack or hold a value of the wrong type for; none when all is well."""
    from jsonschema import Draft202012Validator

    root = schema()
    out: dict[str, str] = {}
    for key in dict.fromkeys(leaf for dotted in keys for leaf in leaf_keys(dotted)):
        where, value = _value(options, key)
        node = node_of(key)
        if where != key:  # a section that is no object
            out.setdefault(where, f"{where}: {json.dumps(value)} is not an object (a config section holding "
                                  f"{key.split('.')[len(where.split('.'))]}, ...)")
        elif value is _ABSENT:
            out[key] = f"{key}: missing ({expected(node)})"
        else:
            errors = list(Draft202012Validator({"definitions": root.get("definitions", {}), **node})
                          .iter_errors(value))
            if errors:
                out[key] = f"{key}: {json.dumps(value)} is not {expected(node)} ({errors[0].message})"
    return list(out.values())


@functools.lru_cache(maxsize=1)
def _base() -> dict:
    """The config that fills what options lack while finding which keys they need: the
    workflow's default config (workflow/config/config.yaml; it names the methods, which the
    schema gives no default), or the schema's defaults without a checkout."""
    from .config import ConfigError, load_workflow_config

    try:
        return load_workflow_config()
    except (ConfigError, OSError):
        return defaults()


def reads_of(options: dict, reads: Callable[[dict], tuple]) -> tuple:
    """The keys `reads` (a function of a config) names for these options: which keys a
    subcommand reads can depend on values (student.sampling dense reads student.stride), taken
    from the options over the default config, or the default config alone where the options are
    too broken to say."""
    base = _base()
    try:
        return tuple(reads(merge(base, options)))
    except (KeyError, TypeError, AttributeError, IndexError, ValueError):
        return tuple(reads(base))


def check_options(options: dict, reads: Callable[[dict], tuple], flag: str, what: str) -> None:
    """Raise one ValueError naming every key of `reads(options)` that the options lack or
    mistype; `what`: who reads them (a method's training, a clip-cache part)."""
    found = sorted(problems(options, reads_of(options, reads)))
    if found:
        lines = "\n".join(f"  {line}" for line in found)
        raise ValueError(f"{flag}: the JSON lacks or mistypes keys {what} reads (types: {SCHEMA_PATH}; the "
                         f"workflow passes them complete):\n{lines}")
