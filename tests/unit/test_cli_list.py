"""`buildbench list`: the resolved matrix, exactly as printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from buildbench.cli import cli

DOCKERFILE = "FROM python:3.11-slim\nARG CUDA\nRUN pip install onnxruntime\n"  # sha256 d919d1adbe0d
CONFIG = """
[[image]]
name = "mine"
dockerfile = "app/Dockerfile"
variants = { cpu = "", cuda = "1" }
build_args = { PIP_INDEX_URL = "https://user:pw@pypi.example/simple", API_TOKEN = "s3cret" }
smoke = { command = ["python", "-c", "import onnxruntime"], expect = "ok" }

[[image]]
name = "plain"
dockerfile = "app/Dockerfile"
variants = { cpu = "" }
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "buildbench.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    for name in ("BUILDBENCH_CONFIG", "BUILDBENCH_ONLY", "BUILDBENCH_CUDA"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _list(*args: str):
    return CliRunner().invoke(cli, ["list", *args])


def test_list_shows_cells_hashes_masked_build_args_and_smoke_tests(project: Path) -> None:
    result = _list()
    assert result.exit_code == 0, result.output
    # The reference table: masked credentials, shell-quoted args, the Dockerfile's sha256.
    assert result.output == (Path(__file__).parent / "data" / "list_expected.txt").read_text()


def test_list_only_and_cuda_select_cells(project: Path) -> None:
    result = _list("--cuda", "cuda", "--only", "mine/cuda", "--only", "mine")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "matrix: buildbench.toml, 1 cell"
    assert result.output.splitlines()[-1].startswith("mine/cuda  app/Dockerfile")


def test_list_without_a_config_shows_the_builtin_matrix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = _list("--cuda", "cpu")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "matrix: built-in (no buildbench.toml here), 2 cells"
    assert [line.split()[0] for line in lines[4:]] == ["pytorch/cpu", "onnx/cpu"]
    assert "BASE_IMAGE=python:3.11-slim" in lines[4]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "nope"], 'ERROR: --only "nope" names no cell of the matrix'),
        (["--config", "missing.toml"], "ERROR: cannot read config missing.toml: No such file"),
    ],
)
def test_list_bad_input_is_one_error_line_and_exit_2(
    project: Path, args: list[str], message: str
) -> None:
    result = _list(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[0].startswith(message)
    assert result.stderr.splitlines()[1].startswith("TIP: ")
