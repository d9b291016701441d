"""What a run builds, decided before any build: no image that none of the run's models can use,
and no model given to a run that tests none."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from buildbench.cli import cli
from buildbench.engine.endpoint import Endpoint
from buildbench.errors import UsageError
from buildbench.measure.smoke.options import ModelRequest, SmokeOptions
from buildbench.record import model_of
from buildbench.results import load_results
from buildbench.run import engines
from buildbench.run.engines import Outcome
from buildbench.run.matrix import Cell, MatrixOptions, builtin_matrix
from buildbench.run.plan import RunPlan, RunRequest, SmokeRequest
from tests.fakes import classic_stream
from tests.unit.test_modelspec import tiny_onnx
from tests.unit.test_pipeline import BASE, Recorder, _engine, _run, _with_smoke, image
from tests.unit.test_report import Screen

NO_TORCH = "no model runs on pytorch ({}: an ONNX model has no PyTorch form)"


@pytest.fixture
def onnx_models(tmp_path: Path) -> tuple[ModelRequest, ...]:
    """Three ONNX files: none has a PyTorch form."""
    return tuple(ModelRequest(str(tiny_onnx(tmp_path / f"{n}.onnx"))) for n in "abc")


def _cells(*frameworks: str) -> list[Cell]:
    return builtin_matrix(MatrixOptions(frameworks=frameworks, variants=("cpu",), base_image=BASE))


def _smoke(models: tuple[ModelRequest, ...], cells: list[Cell]) -> SmokeOptions:
    frameworks = tuple(dict.fromkeys(c.framework or "" for c in cells))
    return SmokeOptions(models=models, frameworks=frameworks, cold_starts=1)


def test_a_cell_whose_framework_runs_none_of_the_models_is_not_built(
    tmp_path: Path, onnx_models: tuple[ModelRequest, ...]
) -> None:
    cells = _cells("pytorch", "onnx")
    plan = RunPlan(cells, BASE, tmp_path / "results", smoke=_smoke(onnx_models, cells))
    engine = _engine([classic_stream(image(1))])  # one build: the engine has no second answer
    engine.run_result = _with_smoke
    progress = Recorder()
    run, records = _run(engine, plan, progress)
    sources = ", ".join(m.spec for m in onnx_models)
    assert [r.key for r in records] == ["onnx/cpu"] and records[0].smoke is not None
    assert model_of(records[0].smoke).not_applicable is None  # the ONNX cell ran them
    # Said before the first cell, and on record with the reason.
    assert progress.header is not None
    assert dict(progress.header.not_built) == {"pytorch/cpu": NO_TORCH.format(sources)}
    saved = load_results(run.run_dir).info.options
    assert saved["cells"] == ["onnx/cpu"]
    assert saved["not_built"] == {"pytorch/cpu": NO_TORCH.format(sources)}


def test_a_cell_that_runs_one_model_of_several_is_built(
    onnx_models: tuple[ModelRequest, ...],
) -> None:
    from buildbench.run.smokes import idle_cells  # here: the base commit has none

    cells = _cells("pytorch", "onnx")
    factory = ModelRequest("buildbench.measure.smoke.resnet:resnet18")  # both forms
    assert idle_cells(cells, _smoke((*onnx_models, factory), cells)) == {}
    assert idle_cells(cells, _smoke((), cells)) == {}  # the default model runs everywhere


def test_a_run_left_with_no_cell_is_refused(onnx_models: tuple[ModelRequest, ...]) -> None:
    from buildbench.run.smokes import idle_cells

    cells = _cells("pytorch")
    smoke = SmokeOptions(models=onnx_models[:1], frameworks=("pytorch", "onnx"))
    with pytest.raises(UsageError, match="no cell runs the models: no model runs on pytorch"):
        idle_cells(cells, smoke)


def _cli(*args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(
        cli, list(args), prog_name="buildbench", env={"DOCKER_HOST": "unix:///nonexistent.sock"}
    )
    return result.exit_code, result.output


def test_list_names_the_cells_it_would_not_build_and_why(
    tmp_path: Path, onnx_models: tuple[ModelRequest, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = [arg for m in onnx_models for arg in ("--model", Path(m.spec).name)]
    code, out = _cli("list", "--cuda", "cpu", *models, cwd=tmp_path, monkeypatch=monkeypatch)
    assert code == 0, out
    assert out.startswith("matrix: built-in (no buildbench.toml here), 1 cell\n")
    assert "onnx/cpu" in out and "pytorch/cpu" not in out.split("not built:")[0]
    assert f"\nnot built: pytorch/cpu: {NO_TORCH.format('a.onnx, b.onnx, c.onnx')}\n" in out
    code, out = _cli("list", "--format", "json", *models, cwd=tmp_path, monkeypatch=monkeypatch)
    document = json.loads(out)
    assert [c["cell"] for c in document["cells"]] == ["onnx/cpu", "onnx/cuda"]
    assert list(document["not_built"]) == ["pytorch/cpu", "pytorch/cuda"]


@pytest.mark.parametrize("given", [["--model", "a.onnx"], ["--input", "x=1x4"]])
def test_a_model_for_a_run_without_smoke_test_is_refused_before_anything(
    given: list[str],
    tmp_path: Path,
    onnx_models: tuple[ModelRequest, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out = _cli("run", "--no-smoke", *given, cwd=tmp_path, monkeypatch=monkeypatch)
    lines = out.splitlines()
    assert code == 2, out
    assert lines[0] == f"ERROR: {given[0]} needs the smoke test: --no-smoke runs no model"
    assert lines[1].startswith("TIP: drop --no-smoke to test the model, or drop " + given[0])
    assert not (tmp_path / "results").exists()


# --- the command line hands the run layer a request -----------------------------------------


def test_the_run_layer_makes_the_smoke_options_of_the_command_lines(tmp_path: Path) -> None:
    cells = _cells("onnx")
    request = SmokeRequest(
        batch_sizes=(1, 4),
        latency_runs=5,
        latency_seconds=0.5,
        cold_starts=2,
        gpus="none",
        timeout_seconds=60.0,
        memory_mib=512,
        ort_settings=" basic, offline ,",
        threads=(2,),
    )
    assert request.options(cells) == SmokeOptions(
        batch_sizes=(1, 4),
        gpus="none",
        timeout_seconds=60.0,
        memory_bytes=512 * 1024**2,
        min_runs=5,
        min_seconds=0.5,
        cold_starts=2,
        ort_settings=("basic", "offline"),
        threads=(2,),
        frameworks=("onnx",),  # the run's cells' own
    )
    plan = RunPlan(cells, BASE, tmp_path)
    assert RunRequest(plan).checked() == plan  # --no-smoke: no smoke options
    with pytest.raises(UsageError, match="--ort-settings fast: not a setting"):
        RunRequest(plan, SmokeRequest(ort_settings="fast")).checked()


def test_the_run_holds_the_registry_it_was_asked_for_for_as_long_as_it_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []

    @contextlib.contextmanager
    def registry(given: str | None) -> Iterator[str | None]:
        events.append(f"start {given}")
        yield "127.0.0.1:5999"
        events.append("stop")

    def run_on_engines(endpoints: list[Endpoint], plan: RunPlan, screen: object) -> Outcome:
        events.append(
            f"run through {plan.registry}, smoke for {plan.smoke and plan.smoke.frameworks}"
        )
        return Outcome()

    monkeypatch.setattr(engines, "run_registry", registry)
    monkeypatch.setattr(engines, "run_on_engines", run_on_engines)
    plan = RunPlan(_cells("onnx"), BASE, tmp_path)
    endpoint = [Endpoint("unix:///var/run/fake.sock")]
    engines.execute(RunRequest(plan, SmokeRequest(), "local"), endpoint, Screen())
    assert events == ["start local", "run through 127.0.0.1:5999, smoke for ('onnx',)", "stop"]
    # A mistake in the smoke options is refused before any registry starts.
    events.clear()
    with pytest.raises(UsageError):
        engines.execute(RunRequest(plan, SmokeRequest(threads=(0,)), "local"), endpoint, Screen())
    assert events == []
