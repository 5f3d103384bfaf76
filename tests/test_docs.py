"""The docs: the MkDocs site builds with --strict (broken links and anchors fail it), its
configuration page is generated from the config schema and names every leaf key with its default,
and the README stays a front page (at most 250 lines) whose links into docs/ resolve."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def test_site_builds_strict_with_every_page(site):
    nav = re.findall(r"^\s+- [^:]+: (\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.M)
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert sorted(nav) == pages, "every docs/*.md page is in mkdocs.yml's nav, and only those"
    for page in nav:
        built = site / ("index.html" if page == "index.md" else f"{page[:-3]}/index.html")
        assert built.is_file(), built


def schema_leaves() -> list[str]:
    """Every leaf key of the config schema, dotted."""
    from svar.config import schema_leaves as leaves

    return [key for key, _ in leaves()]


def table_rows(page: Path) -> dict[str, str]:
    """The configuration page's rows: first cell's key -> the row's text (tags stripped)."""
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page.read_text(), re.S):
        key = re.match(r"\s*<td><code>([^<]+)</code></td>", row)
        if key:
            rows[html.unescape(key.group(1))] = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split())
    return rows


def test_configuration_page_names_every_leaf_key_with_its_default(site):
    from svar.config import defaults

    rows = table_rows(site / "configuration" / "index.html")
    leaves = schema_leaves()
    assert len(leaves) > 100  # the walk found the schema's keys, not an empty page's
    missing = [key for key in leaves if key not in rows]
    assert not missing, f"the generated configuration page lacks these schema keys: {missing}"

    def default(dotted):
        value = defaults()
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

    wrong = []
    for key in leaves:
        value = default(key)
        if value is None:
            continue
        shown = value if isinstance(value, str) else json.dumps(value)
        cells = rows[key].split(" ")
        if shown and shown not in rows[key].removeprefix(cells[0]):
            wrong.append((key, shown, rows[key]))
    assert not wrong, f"defaults missing from their rows: {wrong[:5]}"


def test_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text()
    lines = readme.count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines, at most {README_MAX_LINES}: move detail into docs/"
    # its two commands for a fresh machine come first
    assert "make benchmark" in readme.split("\n## ")[0] and "make test" in readme.split("\n## ")[0]
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links, "the README links into the docs"
    broken = [link for link in links if not (ROOT / link).is_file()]
    assert not broken, f"README links to missing docs files: {broken}"
