"""Every package buildbench imports is one it declares (pyproject.toml), so a fresh install
of the wheel has it."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Modules that exist only inside an image, with no distribution: the smoke program's own
# model module, and the image's own sitecustomize (which ours runs after itself).
IN_IMAGE_ONLY = {"resnet", "sitecustomize"}


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_normalised(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in requirements}


def _imported_top_levels() -> dict[str, str]:
    """Top-level module -> the first file importing it, for every absolute import."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "buildbench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared() -> None:
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    missing = {}
    for module, where in _imported_top_levels().items():
        if module in sys.stdlib_module_names or module in {"buildbench", "__future__"}:
            continue
        if module in IN_IMAGE_ONLY:
            continue
        names = {_normalised(d) for d in distributions.get(module, [module])}
        if not names & declared:
            missing[module] = where
    assert missing == {}
