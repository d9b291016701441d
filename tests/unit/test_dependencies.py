"""Every package buildbench imports is one it declares (pyproject.toml), so a fresh install
of the wheel has it."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_normalised(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in requirements}


def _imported_top_levels(distributions: Mapping[str, list[str]]) -> dict[str, str]:
    """Top-level module -> the first file importing it, for every absolute import; except a
    sibling file no distribution provides (the smoke program and its modules run as plain
    files inside an image)."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "buildbench").rglob("*.py")):
        siblings = {p.stem for p in path.parent.glob("*.py")} - set(distributions)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if (top := name.split(".")[0]) not in siblings:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared() -> None:
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    missing = {}
    for module, where in _imported_top_levels(distributions).items():
        if module in sys.stdlib_module_names or module in {"buildbench", "__future__"}:
            continue
        names = {_normalised(d) for d in distributions.get(module, [module])}
        if not names & declared:
            missing[module] = where
    assert missing == {}
