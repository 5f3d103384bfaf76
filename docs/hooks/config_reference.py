"""MkDocs hook: the configuration page's reference is rendered from the config schema at build
time, so it cannot go stale. The schema is read through `svar.config` (the loader the workflow
and the CLI use: `$ref`s resolved, the registries' names filled into the enums, defaults as the
CLI sees them), never parsed here a second way.

`docs/configuration.md` holds the prose and the MARKER line, which this hook replaces with one
table per top-level section: every leaf key (dotted), its type, its default and its description.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

# the checkout's own svar, as the workflow's rules import it (not another installed copy)
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import svar.config as svar_config  # noqa: E402

PAGE = "configuration.md"
MARKER = "<!-- svar:config-reference -->"
NO_DEFAULT = "—"


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell: pipes escaped, and `<`, `>`, `&` outside code
    spans written as entities (a description's `results/<name>/` is a path, not an HTML tag)."""
    parts = " ".join(str(text).split()).split("`")
    parts[::2] = [html.escape(part, quote=False) for part in parts[::2]]
    return "`".join(parts).replace("|", "\\|")


def _code(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`" if text else '`""`'


def type_of(node: dict) -> str:
    """A schema node's type in words: its JSON type, allowed names, pattern and bounds."""
    node = svar_config._resolve_ref(node, svar_config.schema())
    if "anyOf" in node or "oneOf" in node:
        parts = [type_of({"type": node["type"], **alt} if "type" in node and "type" not in alt else alt)
                 for alt in node.get("anyOf", node.get("oneOf"))]
        return " or ".join(parts)
    if "enum" in node:
        return "one of " + ", ".join(_code(v) for v in node["enum"])
    kind = node.get("type", "any")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and "items" in node:
        items = node["items"]
        size = ""
        if node.get("minItems") is not None and node.get("minItems") == node.get("maxItems"):
            size = f"{node['minItems']} "
        if "properties" in svar_config._resolve_ref(items, svar_config.schema()):
            return f"list of {size}objects"
        return f"list of {size}({type_of(items)})"
    bounds = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                      ("exclusiveMaximum", "<"), ("multipleOf", "multiple of")):
        if key in node:
            bounds.append(f"{sign} {node[key]}")
    if "pattern" in node:
        # HTML, not a code span: a pipe of the pattern must not end the table cell
        # (nor Markdown: its backslashes, *, _, [ ] and backticks are written as entities too)
        pattern = "".join(f"&#{ord(c)};" if c in "|\\*_[]`" else c for c in html.escape(node["pattern"]))
        bounds.append(f"matching <code>{pattern}</code>")
    if "minLength" in node:
        bounds.append(f"at least {node['minLength']} characters")
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def leaves(node: dict, path: list[str]):
    """(dotted key, schema node) of every leaf under `node`: objects are walked, and so are the
    objects of a list (`teachers[].model`)."""
    node = svar_config._resolve_ref(node, svar_config.schema())
    if "properties" in node:
        for key, sub in node["properties"].items():
            yield from leaves(sub, [*path, key])
        return
    yield ".".join(path), node
    items = svar_config._resolve_ref(node.get("items", {}), svar_config.schema())
    if "properties" in items:
        for key, sub in items["properties"].items():
            yield from leaves(sub, [*path[:-1], f"{path[-1]}[]", key])


def default_of(dotted: str) -> str:
    if "[]" in dotted:
        return NO_DEFAULT
    try:
        return _code(svar_config.default(dotted))
    except KeyError:
        return NO_DEFAULT


def reference() -> str:
    """The reference's Markdown: a section per top-level key, a row per leaf key."""
    root = svar_config.schema()
    unrecorded = svar_config.no_rerun_keys()
    out = []
    for section, sub in root["properties"].items():
        node = svar_config._resolve_ref(sub, root)
        out += [f"### `{section}`", ""]
        if "properties" in node and node.get("description"):
            out += [_cell(node["description"]), ""]
        out += ["| key | type | default | description |", "|---|---|---|---|"]
        for dotted, leaf in leaves(sub, [section]):
            cut = any(dotted == key or dotted.startswith(key + ".") for key in unrecorded)
            note = " *(`x-reruns: false`: changing it reruns no result)*" if cut else ""
            out.append(f"| `{dotted}` | {type_of(leaf)} | {_cell(default_of(dotted))} | "
                       f"{_cell(leaf.get('description', ''))}{note} |")
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files):
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/{PAGE}: the line {MARKER} (where the config reference goes) is missing")
    return markdown.replace(MARKER, reference())
