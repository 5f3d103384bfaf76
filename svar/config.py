"""The workflow configuration: one schema with every default, overlays, and each job's share.

`svar/data/config.schema.yaml` gives every key its type, description and (where one makes
sense) default: the only place a default is written. The CLI's and the Python API's defaults
are read from it (`default("teacher.sampling.frames")`). A config file holds only what differs
from the defaults; files given after it overlay it key by key, as Snakemake merges
`--configfile` over the Snakefile's `configfile:` (dicts merged, other values replaced).

Values that name registered members (`x-names: <kind>` in the schema) are checked against the
registry of that kind (svar/registry.py), so the names are written only where the members are.
What the schema cannot see (a dataset, a teacher's weights, a student's, a device are there) is
checked by svar.config_checks, above the modules that know them: this module imports none of
svar's but the registry (whose registries it reaches by name, when a config is validated).

A job is passed exactly the settings it reads, in canonical form (`canonical`: JSON with sorted
keys), so that Snakemake, which compares a job's params as written, reruns a job when and only
when a setting it reads changed, whatever order the keys of a config file come in.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "config.schema.yaml"
# the workflow's base config: in the checkout this package is part of (the rules import svar
# from their checkout, the workflow's own)
WORKFLOW_CONFIG = Path(__file__).resolve().parents[1] / "workflow" / "config" / "config.yaml"


class ConfigError(ValueError):
    """A configuration breaks the schema; the message names the file(s) and each bad key."""


@functools.lru_cache(maxsize=1)
def raw_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _resolve_ref(node: dict, root: dict) -> dict:
    """A property's schema with its `$ref` (a local definition) merged under its own keys."""
    if "$ref" not in node:
        return node
    target = root
    for part in node["$ref"].lstrip("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def schema_leaves() -> list[tuple[str, dict]]:
    """(dotted key, its schema node with `$ref` resolved) of every leaf key of the schema, objects
    walked (resources' sections included), in the schema's order."""
    root = schema()
    out = []

    def walk(node, path):
        node = _resolve_ref(node, root)
        if "properties" in node:
            for key, sub in node["properties"].items():
                walk(sub, [*path, key])
        else:
            out.append((".".join(path), node))

    walk(root, [])
    return out


def _defaults_of(node: dict, root: dict):
    """The default value a schema node gives: its `default`, with its properties' defaults
    filled into it when it is an object. `None` when it has none."""
    node = _resolve_ref(node, root)
    value = copy.deepcopy(node.get("default"))
    properties = node.get("properties")
    if properties is None:
        return value
    value = value if isinstance(value, dict) else {}
    for key, sub in properties.items():
        sub_default = _defaults_of(sub, root)
        if sub_default is not None:
            value[key] = merge(sub_default, value[key]) if isinstance(value.get(key), dict) else \
                value.get(key, sub_default)
    return value or None


@functools.lru_cache(maxsize=1)
def _defaults() -> dict:
    return _defaults_of(raw_schema(), raw_schema()) or {}


def defaults() -> dict:
    """Every default of the schema, as a nested config (the keys without one are absent)."""
    return copy.deepcopy(_defaults())


def default(dotted: str):
    """The default of one key: default("teacher.sampling.frames") -> 8."""
    value: Any = _defaults()
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"{dotted}: the config schema ({SCHEMA_PATH}) gives no default for it")
        value = value[part]
    return copy.deepcopy(value)


def no_rerun_keys() -> list[str]:
    """The keys (or sections) the schema marks `x-reruns: false`: where and how the work is cut
    and run (shards, threads, memory, run time), which no result depends on, so changing one
    reruns no training or evaluation (tests/test_rerun_exactness.py holds every key to it)."""
    root = raw_schema()
    out = []

    def walk(node, path):
        node = _resolve_ref(node, root)
        if node.get("x-reruns") is False:
            out.append(".".join(path))
        for key, sub in node.get("properties", {}).items():
            walk(sub, [*path, key])

    walk(root, [])
    return out


def split_by_reruns(options: dict) -> tuple[dict, dict]:
    """(the part of `options` a result depends on, the part marked `x-reruns: false`): the rules
    give Snakemake the first to record and compare, and pass the second beside it unrecorded."""
    recorded, unrecorded = copy.deepcopy(options), {}
    for dotted in no_rerun_keys():
        *parents, last = dotted.split(".")
        node, out = recorded, unrecorded
        for part in parents:
            if not isinstance(node.get(part), dict):
                break
            node, out = node[part], out.setdefault(part, {})
        else:
            if last in node:
                out[last] = node.pop(last)
    return recorded, _pruned(unrecorded)


def _pruned(node: dict) -> dict:
    return {k: (_pruned(v) if isinstance(v, dict) else v) for k, v in node.items() if v != {}}


def description(dotted: str) -> str:
    node = raw_schema()
    for part in dotted.split("."):
        node = _resolve_ref(node, raw_schema())["properties"][part]
    return " ".join(str(node.get("description", "")).split())


def merge(base: dict, overlay: dict) -> dict:
    """`overlay` over `base`, recursively for dicts (a new dict; neither input changes)."""
    out = copy.deepcopy(base)
    for key, value in (overlay or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _inject_names(node):
    """The schema with `enum` filled in from the registry each `x-names` refers to."""
    from .registry import names

    if isinstance(node, dict):
        out = {k: _inject_names(v) for k, v in node.items()}
        if "x-names" in node:
            out["enum"] = list(names(node["x-names"]))
        return out
    if isinstance(node, list):
        return [_inject_names(v) for v in node]
    return node


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    return _inject_names(raw_schema())


def schema() -> dict:
    """The schema as validated: every `x-names` value given its registry's names as `enum`."""
    return copy.deepcopy(_schema())


def _closest(error):
    """For anyOf / oneOf, the alternative's error that got deepest into the value (a list item
    rather than "not a string"); otherwise the error itself."""
    if not error.context:
        return error
    deepest = max(len(e.absolute_path) for e in error.context)
    return _closest(next(e for e in error.context if len(e.absolute_path) == deepest))


def _key(error) -> str:
    return ".".join(str(p) for p in _closest(error).absolute_path) or "(top level)"


def _message(error) -> str:
    return _closest(error).message


def validate(config: dict, source: str = "config") -> dict:
    """The complete config: `config` over the defaults, checked against the schema. Raises
    ConfigError naming `source` and every key that is unknown, missing or wrong."""
    from jsonschema import Draft202012Validator

    full = merge(defaults(), config)
    errors = sorted(Draft202012Validator(_schema()).iter_errors(full), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  {_key(e)}: {_message(e)}" for e in errors)
        raise ConfigError(f"{source}: invalid configuration (keys and defaults: {SCHEMA_PATH}):\n{lines}")
    return full


def schema_properties(dotted: str) -> dict:
    """The keys of a section, in the schema's order, each with its schema node: its `type`,
    `default`, `x-names` ... (schema_properties("teacher.sampling")["fps"]["type"] -> "number")."""
    root = raw_schema()
    node = root
    for part in dotted.split("."):
        node = _resolve_ref(node, root)["properties"][part]
    return {key: _resolve_ref(sub, root) for key, sub in _resolve_ref(node, root)["properties"].items()}


def enum_of(dotted: str) -> list:
    """The values the schema allows a key ("student.sampling")."""
    node = raw_schema()
    for part in dotted.split("."):
        node = node["properties"][part]
    return list(node["enum"])


def safe_name(text) -> str:
    """`text` with every character but letters, digits and -_. made _: a folder-safe name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))


def grid_teachers(config: dict) -> list[tuple[str, dict]]:
    """(results folder, teacher section) of each teacher of the grid (`teacher_sections`):
    `teacher` itself, whose runs live in results/<name>; then each entry of `teachers`, in
    results/<name>/teachers/<its name, or model__pretrained>."""
    base = results_dir(config)
    sections = teacher_sections(config)
    out = [(base, sections[0])]
    for extra, section in zip(config.get("teachers", []), sections[1:]):
        tag = extra.get("name") or safe_name(f"{section['model']}__{extra['pretrained']}")
        out.append((f"{base}/teachers/{tag}", section))
    return out


def teacher_sections(config: dict) -> list[dict]:
    """The teacher section of each teacher of the grid, its model named with its backend
    (`qualified_model`): `teacher`, then each entry of `teachers` with `teacher`'s other settings
    and its own model, weights, backend and sampling (over `teacher`'s)."""
    first = config["teacher"]
    out = [{**first, "model": qualified_model(first.get("backend", default("teacher.backend")), first["model"])}]
    for extra in config.get("teachers", []):
        # the backend is the model's, not `teacher`'s: an entry names its own (or its model's prefix)
        backend = extra.get("backend", default("teacher.backend"))
        out.append({**first, "backend": backend, "model": qualified_model(backend, extra["model"]),
                    "pretrained": extra["pretrained"],
                    # key by key over `teacher`'s: a video model takes its own frames a clip
                    "sampling": {**first["sampling"], **extra.get("sampling", {})}})
    return out


def qualified_model(backend: str, model: str) -> str:
    """A teacher's one name, its backend in it: `<backend>:<model>` for every backend but the
    default (open_clip, whose model names stay as they are); a model that already carries its
    backend's prefix is kept (svar.teacher.backends.split_model reads it back)."""
    if backend == default("teacher.backend") or model.startswith(f"{backend}:"):
        return model
    return f"{backend}:{model}"


def read_yaml(path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file holds keys at its top level, not a {type(data).__name__}")
    return data


def load(*paths) -> dict:
    """Config files merged in order over the defaults, validated: what Snakemake sees for
    `--configfile` overlays given after the workflow's own config."""
    merged: dict = {}
    for path in paths:
        merged = merge(merged, read_yaml(path))
    return validate(merged, ", ".join(map(str, paths)) or "defaults")


def load_workflow_config(*overlays) -> dict:
    """The workflow's config (workflow/config/config.yaml) with overlays, as Snakemake merges them."""
    return load(WORKFLOW_CONFIG, *[p for p in overlays if Path(p).resolve() != WORKFLOW_CONFIG])


def fraction_tag(fraction) -> str:
    """0.04 -> '0.04', 1.0 -> '1': a labeled fraction as file names carry it."""
    return f"{float(fraction):g}"


# A run's label budget, a grid axis each: a labeled fraction of the pool (`fractions`) or K labeled
# videos a class (`shots`). File names carry it as fraction<f> or shots<K> (the {budget} wildcard).
BUDGET_AXES = {"fraction": "fractions", "shots": "shots"}


def budget_tag(fraction=None, shots=None) -> str:
    """fraction 0.04 -> 'fraction0.04'; shots 4 -> 'shots4'."""
    if (fraction is None) == (shots is None):
        raise ValueError(f"a label budget is a fraction or a number of shots, got fraction={fraction}, shots={shots}")
    return f"fraction{fraction_tag(fraction)}" if shots is None else f"shots{int(shots)}"


def budget_tags(config: dict) -> list[str]:
    """Every label budget of the grid, fractions first, in the config's order."""
    return ([budget_tag(fraction=f) for f in config["fractions"]]
            + [budget_tag(shots=k) for k in config.get("shots", [])])


def parse_budget(tag: str) -> tuple[str, float | int]:
    """'fraction0.04' -> ('fraction', 0.04); 'shots4' -> ('shots', 4)."""
    for axis in BUDGET_AXES:
        if tag.startswith(axis):
            value = tag[len(axis):]
            try:
                return axis, (float(value) if axis == "fraction" else int(value))
            except ValueError:
                break
    raise ValueError(f"{tag!r} is not a label budget: fraction<f> or shots<K>")


def budget_flags(tag: str) -> str:
    """The command-line flag of a budget tag: 'fraction0.04' -> '--fraction 0.04', 'shots4' -> '--shots 4'."""
    axis, value = parse_budget(tag)
    return f"--{axis} {value:g}" if axis == "fraction" else f"--{axis} {value}"


# the split table (csv) of one (budget tag, seed), or how it was made (json): rule splits writes
# it, train and evaluate read it; {results} is results/<name>
SPLIT_PATTERN = "{results}/splits/{budget}_seed{seed}.{ext}"


def split_path(results, fraction, seed, ext: str = "csv", shots=None) -> str:
    """SPLIT_PATTERN of a fraction (a number: its tag is taken) or of K shots, and a seed."""
    budget = budget_tag(shots=shots) if shots is not None else budget_tag(fraction=fraction)
    return SPLIT_PATTERN.format(results=results, budget=budget, seed=seed, ext=ext)


def results_dir(config: dict) -> str:
    """results/<name>: where everything a config makes goes (relative to the workflow's folder)."""
    return f"results/{config['name']}"


def canonical(value) -> str:
    """JSON with sorted keys and no spaces: one written form per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def subset(config: dict, keys) -> dict:
    """The part of a config that `keys` name: whole sections ("student") or single keys
    ("pseudo_label.threshold"), as a nested dict."""
    out: dict = {}
    for dotted in keys:
        parts = dotted.split(".")
        value: Any = config
        for i, part in enumerate(parts):
            if not isinstance(value, dict) or part not in value:
                raise KeyError(f"{'.'.join(parts[:i + 1])}: not in the configuration")
            value = value[part]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(value)
    return out


def show(config: dict) -> str:
    """The config as YAML, in the schema's key order."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110)
