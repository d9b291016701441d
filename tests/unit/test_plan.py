"""What a run builds, decided before any build: no image that none of the run's models can use,
and no model given to a run that tests none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from buildbench.cli import cli
from buildbench.errors import UsageError
from buildbench.measure.smoke.modelspec import ModelRequest
from buildbench.measure.smoke.runner import SmokeOptions
from buildbench.results import load_results
from buildbench.run.matrix import Cell, MatrixOptions, builtin_matrix
from buildbench.run.pipeline import RunPlan
from tests.fakes import classic_stream
from tests.unit.test_modelspec import tiny_onnx
from tests.unit.test_pipeline import BASE, Recorder, _engine, _run, _with_smoke, image

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
    assert records[0].smoke.not_applicable is None  # the ONNX cell ran them
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
