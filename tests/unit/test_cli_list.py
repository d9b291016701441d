"""`buildbench list`: the resolved matrix, exactly as printed, with run's matrix and pip options
and what pip in the builder stage gets (the host's pip configuration unless options say else)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from buildbench.cli import cli, host_pip
from buildbench.run import pipconfig

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
    assert [line.split()[0] for line in lines[4:6]] == ["pytorch/cpu", "onnx/cpu"]
    assert "BASE_IMAGE=python:3.11-slim" in lines[4]
    # The built-in images get buildbench's build-inputs: the list says what their pip gets.
    assert lines[6:] == ["", "pip in the builder stage:", "  index: PyPI (pip's default)"]


def test_list_of_a_config_without_build_inputs_says_nothing_of_pip(project: Path) -> None:
    assert "pip in the builder stage" not in _list().output


def test_list_takes_runs_pip_options_and_masks_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"w")
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    args = ["--cuda", "cpu", "--framework", "pytorch", "--base-image", "local/python:3.11"]
    args += ["--pip-index-url", "https://user:pw@mirror.example/simple"]
    args += ["--pip-find-links", str(wheels), "--ca-bundle", str(ca)]
    result = _list(*args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # A CPU torch wheel in find-links pins torch and drops the CPU index (auto).
    assert lines[4].split()[0] == "pytorch/cpu"
    assert "BASE_IMAGE=local/python:3.11 TORCH_VERSION=2.13.0 TORCH_CPU_INDEX_URL= " in lines[4]
    assert lines[5:] == [
        "",
        "pip in the builder stage:",
        "  index: https://***@mirror.example/simple (option)",
        f"  find-links: {wheels} (option)",
        f"  CA bundle: {ca} (option)",
    ]


def test_list_shows_the_hosts_pip_configuration_and_what_it_leaves_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    host = {
        "index-url": ("https://mirror.example/simple", "pip config global"),
        "extra-index-url": ("file:///opt/pypi/simple https://extra.example/simple", "environment"),
        "constraint": ("/etc/pip/constraints.txt", "pip config global"),
    }
    monkeypatch.setattr(pipconfig, "host_pip_config", lambda: host)
    result = _list("--cuda", "cpu", "--framework", "onnx")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[5:] == [
        "",
        "pip in the builder stage:",
        "  index: https://mirror.example/simple (pip config global)",
        "  extra index: https://extra.example/simple (environment)",
        "  left out: extra index file:///opt/pypi/simple: a folder on this machine",
        "  left out: constraints /etc/pip/constraints.txt: pip's cap here, not the image's",
    ]
    # An option wins over the host's setting.
    result = _list("--cuda", "cpu", "--framework", "onnx", "--pip-index-url", "https://own/simple")
    assert "  index: https://own/simple (option)" in result.output.splitlines()


def test_the_hosts_pip_configuration_is_read_beside_the_commands_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pip config list` is a Python start-up of its own: it runs in a thread from when the
    command is known, and the command waits for what it read."""
    monkeypatch.chdir(tmp_path)
    readers: list[threading.Thread] = []

    def slow_host() -> dict[str, tuple[str, str]]:
        readers.append(threading.current_thread())
        threading.Event().wait(0.05)
        return {"index-url": ("https://late.example/simple", "pip config global")}

    monkeypatch.setattr(pipconfig, "host_pip_config", slow_host)
    result = _list("--cuda", "cpu", "--framework", "onnx")
    assert result.exit_code == 0, result.output
    assert "  index: https://late.example/simple (pip config global)" in result.output
    assert len(readers) == 1 and readers[0] is not threading.main_thread()
    assert _list("--help").exit_code == 0 and len(readers) == 1  # help reads nothing
    # Without the command line (the library's own callers), it is read there and then.
    assert host_pip.result()["index-url"][0] == "https://late.example/simple"
    assert readers[-1] is threading.main_thread()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "nope"], 'ERROR: --only "nope" names no cell of the matrix'),
        (["--config", "missing.toml"], "ERROR: cannot read config missing.toml: No such file"),
        (["--ca-bundle", "missing.pem"], "ERROR: CA bundle "),
        (["--pip-find-links", "no-such-dir"], "ERROR: find-links "),
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
