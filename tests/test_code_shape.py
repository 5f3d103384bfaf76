"""The shape of svar/'s code (issue #27): no import cycle between its modules, counting every
import anywhere in a module (inside functions too: if A imports B anywhere, B must not reach A),
no module over 500 lines and no function over 150 lines."""

from __future__ import annotations

import ast
from pathlib import Path

# networkx: a dependency of torch's, so in every svar environment
import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "svar"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 150


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of a package by its dotted name (a package by its own, svar.teacher)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name a relative import (`from ..x import y`: level 2, target x) in `module` means."""
    if level == 0:
        return target or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def imports_of(module: str, path: Path, modules) -> set[str]:
    """The svar modules `module` imports anywhere in its file. `from pkg import name` counts as
    importing pkg.name when that is a module, else pkg."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            # `import svar.a.b` imports svar.a.b (and its packages, which import nothing of a.b's)
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def import_graph(package: Path = PACKAGE) -> nx.DiGraph:
    modules = module_names(package)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        graph.add_edges_from((module, target) for target in imports_of(module, path, modules))
    return graph


def test_the_import_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert graph.has_edge("svar.teacher.features", "svar.teacher.weights")  # from .weights import ...
    assert graph.has_edge("svar.datasets.base", "svar.download")  # from ..download import ...
    assert graph.has_edge("svar.config_checks", "svar.methods")  # inside a function
    assert graph.has_edge("svar.cli", "svar.cli.teacher")  # from . import teacher: the submodule


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("import os\nfrom .sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    graph = import_graph(package)
    assert sorted(graph.edges) == [("pkg.a", "pkg.sub.b"), ("pkg.sub.b", "pkg.a")]
    assert [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1] == [["pkg.a", "pkg.sub.b"]]


def test_config_is_a_leaf():
    """svar.config is what every module reads its defaults from: it imports none of svar's
    modules but the registry (itself importing none), so importing it closes no circle."""
    graph = import_graph()
    assert set(graph.successors("svar.config")) <= {"svar.registry"}
    assert not set(graph.successors("svar.registry"))


def test_no_import_cycle():
    graph = import_graph()
    cycles = [c for c in nx.strongly_connected_components(graph) if len(c) > 1]
    lines = []
    for component in cycles:
        sub = graph.subgraph(component)
        lines.append(f"cycle of {len(component)} modules: {', '.join(sorted(component))}")
        lines += [f"    {a} -> {b}" for a, b in sorted(sub.edges)]
    assert not cycles, "import cycles in svar/ (every import counted, inside functions too):\n" + "\n".join(lines)


def test_modules_and_functions_are_short():
    offenders = []
    for module, path in module_names().items():
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            offenders.append(f"{path.relative_to(PACKAGE.parent)}: {lines} lines (> {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}: {length} lines "
                                     f"(> {MAX_FUNCTION_LINES})")
    assert not offenders, "too long:\n" + "\n".join(offenders)
