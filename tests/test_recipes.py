"""CONTRIBUTING.md's recipes are complete: for every registered method, dataset, report figure and
clip-sampling mode, each place its recipe lists holds it (a method registered without its schema
section, its row in docs/methods.md or its name in full.yaml fails here), and every file a recipe
names exists."""

import re

import yaml

from conftest import ROOT
from svar.config import _resolve_ref, defaults, schema

CONTRIBUTING = ROOT / "CONTRIBUTING.md"


def recipes() -> dict[str, str]:
    """CONTRIBUTING.md's sections: '## Add a method' -> its text."""
    parts = re.split(r"^## ", CONTRIBUTING.read_text(), flags=re.M)[1:]
    return {part.split("\n", 1)[0]: part for part in parts}


def schema_node(dotted: str) -> dict | None:
    root = schema()
    node = root
    for part in dotted.split("."):
        node = _resolve_ref(node, root).get("properties", {}).get(part)
        if node is None:
            return None
    return _resolve_ref(node, root)


def undocumented(dotted: str) -> list[str]:
    """The keys under `dotted` (a section or a key) that the schema lacks, or holds without a
    description or a default."""
    node = schema_node(dotted)
    if node is None:
        return [f"{dotted}: not in the schema"]
    if node.get("type") == "object" and "properties" in node:
        return [problem for key in node["properties"] for problem in undocumented(f"{dotted}.{key}")]
    return [f"{dotted}: no {what}" for what in ("description", "default") if what not in node]


def test_the_four_recipes_name_files_that_exist():
    found = recipes()
    assert {"Add a method", "Add a dataset", "Add a report figure", "Add a clip-sampling mode"} <= set(found)
    for title, text in found.items():
        # the repository's files it names (not the layout a dataset is turned into)
        paths = [p for p in re.findall(r"`([\w./<>-]+)`", text) if "/" in p and (ROOT / p.split("/")[0]).is_dir()]
        assert paths, title
        for path in paths:
            # a placeholder (<name>, <family>) names a new file: its folder must exist
            target = ROOT / (path.split("<")[0].rsplit("/", 1)[0] if "<" in path else path)
            assert target.exists(), f"CONTRIBUTING.md, {title}: {path} does not exist"


def test_every_method_has_what_its_recipe_lists():
    from svar.methods import METHODS

    config = defaults()
    full = yaml.safe_load((ROOT / "workflow" / "config" / "full.yaml").read_text())["methods"]
    table = (ROOT / "docs" / "methods.md").read_text()
    problems = []
    for name, cls in METHODS.items():
        if name not in full:
            problems.append(f"{name}: not in workflow/config/full.yaml's methods")
        if f"| `{name}` |" not in table:
            problems.append(f"{name}: no row in docs/methods.md")
        problems += [f"{name}: {p}" for key in cls.reads(config) for p in undocumented(key)]
    assert not problems, problems


def test_every_dataset_has_what_its_recipe_lists():
    from rehearsal import LAYOUTS, REHEARSALS
    from svar.datasets import DATASETS

    shipped = {path.name: yaml.safe_load(path.read_text()) for path in (ROOT / "workflow" / "config").glob("*.yaml")}
    docs = (ROOT / "docs" / "datasets.md").read_text().lower()
    tests = (ROOT / "tests" / "test_datasets.py").read_text()
    problems = []
    for name, dataset in DATASETS.items():
        if dataset.generated:
            continue  # written by svar itself: no archives, the default config's
        configs = [f for f, c in shipped.items() if (c or {}).get("dataset", {}).get("name") == name]
        if not configs:
            problems.append(f"{name}: no shipped config in workflow/config/")
        problems += [f"{name}: {f} has no rehearsal in tests/rehearsal.py" for f in configs if f not in REHEARSALS]
        if name not in LAYOUTS:
            problems.append(f"{name}: no layout its archives extract to in tests/rehearsal.py")
        if f'prepare("{name}"' not in tests:
            problems.append(f"{name}: tests/test_datasets.py never prepares it from archives")
        if name not in docs:
            problems.append(f"{name}: not in docs/datasets.md")
        if not dataset.video_archives or dataset.published_shape is None:
            problems.append(f"{name}: no video archives or no published shape")
    assert not problems, problems


def test_every_report_figure_has_what_its_recipe_lists():
    from svar.report.figures import FIGURES

    listed = (ROOT / "results" / "README.md").read_text()
    missing = [name for name, figure in FIGURES.items() if figure.file not in listed]
    assert len(FIGURES) >= 7 and not missing, missing


def test_every_clip_sampling_mode_has_what_its_recipe_lists():
    from svar.clips.sampling import CLIP_SAMPLINGS

    problems = [p for _, mode in CLIP_SAMPLINGS.items() for key in mode.reads for p in undocumented(key)]
    for module in ("docs/clips.md", "tests/test_clip_sampling.py"):
        text = (ROOT / module).read_text()
        problems += [f"{name}: not in {module}" for name in CLIP_SAMPLINGS if not re.search(rf"\b{name}\b", text)]
    assert not problems, problems
