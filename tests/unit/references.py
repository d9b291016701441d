"""Stored reference outputs (exact text) and the fixture results they are made from.

Regenerate after an intended change with `BUILDBENCH_UPDATE_REFERENCE=1 pytest tests/unit`,
then read the diff of tests/unit/reference/ before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "data"
REFERENCE = HERE / "reference"
UPDATE = os.environ.get("BUILDBENCH_UPDATE_REFERENCE") == "1"


def reference(name: str, actual: str) -> str:
    """The stored text `actual` must equal; with BUILDBENCH_UPDATE_REFERENCE=1, `actual` itself,
    written first."""
    path = REFERENCE / name
    if UPDATE:
        path.write_text(actual)
    if not path.exists():
        raise AssertionError(f"no reference {path}: run with BUILDBENCH_UPDATE_REFERENCE=1")
    return path.read_text()
