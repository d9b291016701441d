"""buildbench's own import graph keeps its shape: no import circle anywhere, the Docker SDK
engine made in one place, and a run that does not call back into `compare`. Every import
statement counts, at any depth (inside functions and `if TYPE_CHECKING:` too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "buildbench").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts).removesuffix(".__init__")] = path
    return found


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement may name: `from a import b` names `a` and `a.b`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    """Each buildbench module -> the buildbench modules it imports."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        graph[module] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = _imported(module, path, node)
                graph[module] |= {name for name in names if name in modules and name != module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            if component:
                found.append(sorted([*component, node]))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def importers(graph: dict[str, set[str]], target: str) -> set[str]:
    return {module for module, imported in graph.items() if target in imported}


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_buildbench() -> None:
    graph = import_graph()
    assert "buildbench.engine.dockersdk" in graph["buildbench.engine.factory"]  # it reads them
    assert circles(graph) == []


def test_only_the_engine_package_imports_the_docker_sdk_engine() -> None:
    """Everything else talks to the `Engine` protocol (engine/api.py) and gets its engine from
    engine/factory.py."""
    outside = {
        module
        for module in importers(import_graph(), "buildbench.engine.dockersdk")
        if not module.startswith("buildbench.engine.")
    }
    assert outside == set()


def test_the_run_does_not_call_back_into_compare() -> None:
    """`compare` reads finished runs; a run's own warnings come from below it."""
    run_side = {
        module
        for module in importers(import_graph(), "buildbench.analyze.compare")
        if module.startswith("buildbench.run") or module == "buildbench.cli.run"
    }
    assert run_side == set()
