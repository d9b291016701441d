"""Commands as a new user types them: the installed console script, in a fresh directory,
default options (`report`, `history` and `clean` on the README's main run: test_matrix.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import buildbench

pytestmark = pytest.mark.integration


def test_list_shows_the_default_matrix_and_what_pip_gets(tmp_path: Path):
    ran = buildbench("list", cwd=tmp_path)
    assert ran.process.returncode == 0, ran.process.stderr
    out = ran.process.stdout
    assert out.startswith("matrix: built-in (no buildbench.toml here), 4 cells")
    for cell in ("pytorch/cpu", "pytorch/cuda", "onnx/cpu", "onnx/cuda"):
        assert cell in out
    assert "pip in the builder stage:" in out


def test_a_mistake_is_one_line_and_a_tip(tmp_path: Path):
    ran = buildbench("run", "--only", "nope", cwd=tmp_path)
    assert ran.process.returncode == 2
    assert ran.process.stderr.splitlines()[0] == 'ERROR: --only "nope" names no cell of the matrix'
    assert ran.process.stderr.splitlines()[1].startswith("TIP: valid cells: pytorch/cpu")
    assert "Traceback" not in ran.process.stderr
