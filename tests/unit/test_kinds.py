"""The kinds of smoke test: one package each, named in one list, asked by the layers above
(config, `list`, the run) instead of known to them; a table read by the kind's declaration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from buildbench.analyze.metrics import METRIC_BY_KEY, METRICS
from buildbench.cli import cli
from buildbench.errors import UsageError
from buildbench.measure.smoke import kinds, program, runner
from buildbench.measure.smoke.kinds.http import loadgen
from buildbench.measure.smoke.options import ModelRequest, SmokeOptions
from buildbench.measure.smoke.runner import Idle, Kind, Payload, SmokeContext
from buildbench.measure.smoke.table import Rule, Where, key, read_table
from buildbench.record import DETAILS, SmokeResult
from buildbench.render.kinds import REPORTS, kind_reports
from buildbench.run.config import load_config, load_models
from buildbench.run.matrix import MatrixOptions
from buildbench.run.smokes import idle_reason, smoke_kind
from buildbench.status import Status
from tests.unit.test_import_graph import import_graph

KINDS_DIR = Path(kinds.__file__).parent


def test_every_kind_is_its_own_package_named_once_in_the_registry() -> None:
    names = [kind.name for kind in kinds.KINDS]
    assert names == ["model", "command", "http"]
    assert sorted(p.name for p in KINDS_DIR.iterdir() if (p / "__init__.py").is_file()) == sorted(
        names
    )
    keys = [key for kind in kinds.KINDS for key in kind.keys]
    assert len(keys) == len(set(keys))  # a smoke table's keys name one kind
    assert [kind.name for kind in kinds.KINDS if not kind.keys] == ["model"]  # smoke = "onnx"


def _closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for found in graph[todo.pop()] - seen:
            seen.add(found)
            todo.append(found)
    return seen


def test_the_shared_protocol_imports_no_kind() -> None:
    """runner.py is what every kind implements: it must not lean on one of them (it imported
    the model kind's program and model specs)."""
    reached = _closure(import_graph(), "buildbench.measure.smoke.runner")
    kind_modules = {m for m in reached if m.startswith("buildbench.measure.smoke.kinds")}
    assert kind_modules == set()
    assert "buildbench.measure.smoke.modelspec" not in reached
    assert "buildbench.measure.smoke.program" not in reached


def test_the_programs_in_the_image_report_on_the_protocol_lines() -> None:
    """Each program keeps its own copy (it runs without buildbench): they must agree."""
    for found in (program, loadgen):
        assert found.RESULT_PREFIX == runner.RESULT_PREFIX
        assert found.PROGRESS_PREFIX == runner.PROGRESS_PREFIX


# ---------------------------------------------------------------------------------------------
# A throwaway kind: its package's parts, and one line in the registry


@dataclass(frozen=True)
class EchoSmoke:
    """`smoke = { echo = "text" }`: the image's `echo` must print it."""

    text: str

    @property
    def framework(self) -> str | None:
        return None

    def describe(self) -> str:
        return f"echo {self.text}"

    def smoke(self, variant: str, options: SmokeOptions) -> EchoSmoke:
        return self

    def check(self) -> None:
        return None

    def payload(self) -> Payload | None:
        return None

    def run(self, ctx: SmokeContext) -> SmokeResult:
        return SmokeResult(Status.OK, "ok", "command")

    def idle(self) -> Idle | None:
        return None if self.text else Idle("nothing to echo", {"echo": "empty"})


@dataclass(frozen=True)
class EchoTable:
    echo: str = key(
        example='"hello"',
        rule=Rule(lambda text: "\n" not in text, "echo {value!r} spans lines", "one line"),
    )


def _read_echo(data: Any, at: Where) -> EchoSmoke:
    return EchoSmoke(read_table(EchoTable, data, at).echo)


ECHO = Kind(name="echo", keys=("echo",), read=_read_echo, tip='e.g. smoke = { echo = "hi" }')
IMAGE = '[[image]]\nname = "mine"\ndockerfile = "Dockerfile"\nvariants = { cpu = "" }\n'


@pytest.fixture
def echo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(kinds, "KINDS", (*kinds.KINDS, ECHO))
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\n")
    return tmp_path / "buildbench.toml"


def test_a_new_kind_is_read_listed_and_run_without_touching_the_layers_above(
    echo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo.write_text(IMAGE + 'smoke = { echo = "hi" }\n')
    loaded = load_config(echo)
    assert loaded is not None
    (cell,) = loaded.cells(MatrixOptions())
    assert cell.smoke == EchoSmoke("hi") and cell.framework is None
    made = smoke_kind(cell, SmokeOptions())
    assert made == EchoSmoke("hi") and idle_reason(made) is None
    assert idle_reason(EchoSmoke("")) == "nothing to echo (echo: empty)"
    monkeypatch.chdir(echo.parent)
    listed = CliRunner().invoke(cli, ["list"])
    assert listed.exit_code == 0, listed.output
    assert "mine/cpu" in listed.stdout and "echo hi" in listed.stdout


@pytest.mark.parametrize(
    ("smoke", "message", "tip"),
    [
        ("{ echo = 3 }", '"echo" must be a string, not an integer', 'e.g. echo = "hello"'),
        ('{ echo = "a\\nb" }', "echo 'a\\nb' spans lines", "one line"),
        (
            '{ echo = "hi", command = ["true"] }',
            '"echo" takes no "command" or "expect" beside it',
            'e.g. smoke = { echo = "hi" }',
        ),
        ("{ ech = 1 }", 'unknown key "ech"', "valid keys: command, expect, http, echo"),
    ],
)
def test_a_new_kinds_table_is_refused_in_one_line_naming_the_key(
    echo: Path, smoke: str, message: str, tip: str
) -> None:
    echo.write_text(IMAGE + f"smoke = {smoke}\n")
    with pytest.raises(UsageError) as error:
        load_config(echo)
    assert error.value.message == f"{echo}: [[image]] #1: smoke: {message}"
    assert error.value.tip == tip


# ---------------------------------------------------------------------------------------------
# Tables read by their declaration


@dataclass(frozen=True)
class Table:
    count: int = key(example="3")
    share: float = 0.5
    names: tuple[str, ...] = ()
    labels: dict[str, str] | None = None
    on: bool = False


AT = Where(Path("/c/buildbench.toml"), "[thing]")


@pytest.mark.parametrize(
    ("data", "message", "tip"),
    [
        ({"count": True}, '"count" must be an integer, not a boolean', "e.g. count = 3"),
        ({"count": 1.0}, '"count" must be an integer, not a float', "e.g. count = 3"),
        ({}, '"count" is required', 'add count = "..." to this table'),
        ({"count": 1, "share": "x"}, '"share" must be a float, not a string', "e.g. share = ..."),
        ({"count": 1, "names": "a"}, '"names" must be an array, not a string', "e.g. names = ..."),
        ({"count": 1, "names": ["a", 2]}, '"names" must be a string, not an integer', None),
        ({"count": 1, "labels": {"X": 1}}, '"labels.X" must be a string, not an integer', None),
        ({"count": 1, "on": 1}, '"on" must be a boolean, not an integer', "e.g. on = ..."),
        ({"count": 1, "cont": 1}, 'unknown key "cont"', "valid keys: count, share, names, "),
        ([1], "must be a table, not an array", "see the README's config"),
    ],
)
def test_a_declared_table_refuses_each_mistake_in_one_line(
    data: object, message: str, tip: str | None
) -> None:
    with pytest.raises(UsageError) as error:
        read_table(Table, data, AT)
    assert error.value.message == f"/c/buildbench.toml: [thing]: {message}"
    assert "\n" not in error.value.message and error.value.tip
    if tip is not None:
        assert error.value.tip.startswith(tip)


def test_a_declared_table_structures_what_it_reads() -> None:
    found = read_table(Table, {"count": 2, "share": 1, "names": ["a"], "labels": {"A": "b"}}, AT)
    assert found == Table(2, 1.0, ("a",), {"A": "b"}, False)
    assert isinstance(found.share, float) and read_table(Table, {"count": 0}, AT).labels is None


def test_each_kind_has_its_typed_detail_registered_with_the_converter() -> None:
    """results.json reads a smoke result's detail as its kind's: the registry's kinds and the
    converter's details are the same kinds."""
    assert [kind.name for kind in kinds.KINDS] == list(DETAILS)


ASKERS = (
    "buildbench.run.config",
    "buildbench.run.smokes",
    "buildbench.cli.list",
    "buildbench.analyze.metrics",
    "buildbench.analyze.compare",
    "buildbench.analyze.history",
)


def test_the_layers_above_ask_the_kinds_instead_of_importing_one() -> None:
    graph = import_graph()
    for module in ASKERS:
        one_kind = {
            m
            for m in graph[module]
            if m.startswith("buildbench.measure.smoke.kinds.")
            or m
            in ("buildbench.record.model", "buildbench.record.http", "buildbench.analyze.served")
        }
        # The run's models are the model kind's own top-level tables ([[model]]): the config
        # hands them to it, as it hands every image's `smoke` to the registry.
        allowed = (
            {"buildbench.measure.smoke.kinds.model.config"} if module.endswith("config") else set()
        )
        assert one_kind - allowed == set(), module


def test_every_kinds_metrics_are_compares_and_historys() -> None:
    declared = [m.key for detail in DETAILS.values() for m in detail.metrics]
    assert set(declared) <= set(METRIC_BY_KEY)
    assert [m.key for m in METRICS][:5] == [
        "build_seconds",
        "image_size_bytes",
        "compressed_size_bytes",
        "latency_b1_seconds",  # the model kind's
        "cold_start_seconds",  # every kind's with a first output
    ]
    assert [m.stage for m in METRICS[3:]] == ["smoke"] * (len(METRICS) - 3)


def test_each_kinds_report_is_found_by_a_registered_kinds_name() -> None:
    assert set(REPORTS) <= {kind.name for kind in kinds.KINDS}
    assert kind_reports() == [REPORTS["model"], REPORTS["http"]]  # the registry's order


MODEL_TABLES = [
    (
        'path = "m.onnx"\nmodule = "a:b"',
        "needs path or module (one of them)",
        'path = "model.onnx"',
    ),
    ('inputs = ["x=1"]', "needs path or module (one of them)", 'path = "model.onnx"'),
    ('path = "m.onnx"\ninputs = "x=1"', '"inputs" must be an array, not a string', "e.g. inputs"),
    ('path = "m.onnx"\ninputs = [1]', "inputs must be strings", '["NAME=DIMS[:DTYPE]'),
    ("path = 3", '"path" must be a string, not an integer', 'e.g. path = "..."'),
    ('path = ""', '"path" is required', 'add path = "..." to this image'),
    ('path = "m.onnx"\nshape = 1', 'unknown key "shape"', "valid keys: path, module, inputs"),
]


@pytest.mark.parametrize(
    ("table", "message", "tip"), MODEL_TABLES, ids=[m for _, m, _ in MODEL_TABLES]
)
def test_the_model_kinds_tables_are_refused_as_before(
    tmp_path: Path, table: str, message: str, tip: str
) -> None:
    config = tmp_path / "buildbench.toml"
    config.write_text(f"[[model]]\n{table}\n")
    with pytest.raises(UsageError) as error:
        load_models(config)
    assert error.value.message == f"{config}: [[model]] #1: {message}"
    assert error.value.tip.startswith(tip)


def test_the_model_kind_reads_its_tables_relative_to_the_config(tmp_path: Path) -> None:
    config = tmp_path / "buildbench.toml"
    config.write_text(
        '[[model]]\npath = "m.onnx"\ninputs = ["x=1x4"]\n\n[[model]]\nmodule = "p:f"\n'
    )
    base = str(tmp_path.resolve())
    assert load_models(config) == (
        ModelRequest("m.onnx", ("x=1x4",), base=base),
        ModelRequest("p:f", (), base=base),
    )
