"""One output choice for every command that reads results: `--format` on `compare`, `history`,
`report` and `list`, spelled by one decorator, each format checked against stored references."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from buildbench.cli import cli
from tests.unit.references import DATA, reference

VM, REGRESSED = DATA / "vm.json", DATA / "vm-regressed.json"
CONFIG = """
[[image]]
name = "mine"
dockerfile = "app/Dockerfile"
variants = { cpu = "", cuda = "1" }
build_args = { API_TOKEN = "s3cret" }
smoke = { command = ["python", "-c", "import onnxruntime"], expect = "ok" }
"""


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args))


def test_every_reading_command_offers_the_formats_it_fits() -> None:
    found = {}
    for name in ("compare", "history", "report", "list"):
        command = cli.get_command(click.Context(cli), name)
        assert command is not None
        [option] = [p for p in command.params if p.name == "format_"]
        assert isinstance(option.type, click.Choice)
        found[name] = tuple(option.type.choices)
        assert option.envvar == f"BUILDBENCH_{name.upper()}_FORMAT"
    assert found == {
        "compare": ("text", "markdown", "json", "csv"),
        "history": ("markdown", "json", "csv"),
        "report": ("markdown", "csv", "json"),
        "list": ("text", "markdown", "json", "csv"),
    }


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM python:3.11-slim\nARG CUDA\n")
    (tmp_path / "buildbench.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    for name in ("BUILDBENCH_CONFIG", "BUILDBENCH_ONLY", "BUILDBENCH_CUDA"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("format_", "suffix"), [("markdown", "md"), ("json", "json"), ("csv", "csv")]
)
def test_list_in_each_format(project: Path, format_: str, suffix: str) -> None:
    result = invoke("list", "--format", format_)
    assert result.exit_code == 0, result.output
    assert result.stdout == reference(f"list.{suffix}", result.stdout)


def test_list_json_is_a_document_with_full_hashes_and_masked_build_args(project: Path) -> None:
    document = json.loads(invoke("list", "--format", "json").stdout)
    assert document["format"] == "buildbench-list/1"
    assert [c["cell"] for c in document["cells"]] == ["mine/cpu", "mine/cuda"]
    assert len(document["cells"][0]["sha256"]) == 64
    assert document["cells"][0]["build_args"]["API_TOKEN"] == "***"


def test_history_json_and_compare_json_carry_their_format_version(tmp_path: Path) -> None:
    history = json.loads(invoke("history", str(VM), str(REGRESSED), "--format", "json").stdout)
    assert history["format"] == "buildbench-history/2"
    assert {"regressions", "busy", "method", "series"} <= set(history)
    compared = json.loads(invoke("compare", str(VM), str(REGRESSED), "--format", "json").stdout)
    assert compared["format"] == "buildbench-compare/1"


def test_the_format_comes_from_the_environment_too() -> None:
    result = CliRunner().invoke(
        cli, ["compare", str(VM), str(REGRESSED)], env={"BUILDBENCH_COMPARE_FORMAT": "csv"}
    )
    assert result.stdout.splitlines()[0].startswith("mark,meaning,cell,metric")
