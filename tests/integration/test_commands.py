"""Every command as a new user types it: the installed console script, in a fresh directory
(or the one a run left), default options."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Ran, buildbench

pytestmark = pytest.mark.integration


def test_list_shows_the_default_matrix_and_what_pip_gets(tmp_path: Path):
    ran = buildbench("list", cwd=tmp_path)
    assert ran.process.returncode == 0, ran.process.stderr
    out = ran.process.stdout
    assert out.startswith("matrix: built-in (no buildbench.toml here), 4 cells")
    for cell in ("pytorch/cpu", "pytorch/cuda", "onnx/cpu", "onnx/cuda"):
        assert cell in out
    assert "pip in the builder stage:" in out


def test_report_of_the_users_run(matrix_run: Ran):
    run_dir = matrix_run.results[0].parent
    ran = buildbench("report", str(run_dir.relative_to(matrix_run.cwd)), cwd=matrix_run.cwd)
    assert ran.process.returncode == 0, ran.process.stderr
    assert ran.process.stdout.startswith("# buildbench report")
    csv = buildbench("report", "results", "--format", "csv", cwd=matrix_run.cwd)
    assert csv.process.stdout.startswith("run_id,machine,engine,name")
    assert len(csv.process.stdout.splitlines()) == 5  # a header and four cells


def test_history_of_the_users_results(matrix_run: Ran):
    ran = buildbench("history", "-o", "history.md", cwd=matrix_run.cwd)
    assert ran.process.returncode == 0, ran.process.stderr
    text = (matrix_run.cwd / "history.md").read_text()
    assert text.startswith("# buildbench history: no regression at the newest run")
    # Sizes: a time series whose every run was busy (a loaded CI machine) has no line to draw.
    assert (matrix_run.cwd / "history-image_size_bytes.png").is_file()


def test_clean_dry_run_lists_the_users_images(matrix_run: Ran):
    ran = buildbench("clean", "--dry-run", cwd=matrix_run.cwd)
    assert ran.process.returncode == 0, ran.process.stderr
    assert ran.process.stdout.count("would remove image") >= 4


def test_a_mistake_is_one_line_and_a_tip(tmp_path: Path):
    ran = buildbench("run", "--only", "nope", cwd=tmp_path)
    assert ran.process.returncode == 2
    assert ran.process.stderr.splitlines()[0] == 'ERROR: --only "nope" names no cell of the matrix'
    assert ran.process.stderr.splitlines()[1].startswith("TIP: valid cells: pytorch/cpu")
    assert "Traceback" not in ran.process.stderr
