"""The model kind with the user's models, against a fake engine: one container per model and
framework that has a form of it, "not applicable" without one, every output's parity and each
runtime setting read from the program's report, and a different model never compared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from buildbench.analyze.compare import differences
from buildbench.analyze.derived import FIGURES
from buildbench.engine.api import ContainerOutcome, ContainerSpec
from buildbench.measure.smoke import program
from buildbench.measure.smoke.kinds.model.smoke import InferenceSmoke, load_models
from buildbench.measure.smoke.options import ModelRequest, SmokeOptions
from buildbench.measure.smoke.runner import SmokeContext
from buildbench.record import CellRecord, ModelDetail, ModelInfo, SmokeResult, model_of
from buildbench.render.markdown import render_markdown
from buildbench.render.tables import cell_row
from buildbench.results import load_results, results_document, write_results
from buildbench.status import Status
from tests.fakes import FakeEngine
from tests.unit.test_modelspec import tiny_onnx
from tests.unit.test_report import CURRENT


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_models.cache_clear()


def report(**overrides: Any) -> dict[str, Any]:
    """What the program prints for the tiny model (two outputs) under two settings."""
    latency = {"2": {"samples": [0.001, 0.002], "seconds": 0.2, "warmup": 1}}
    parity = {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "ok": True}
    base = {
        "python_version": "3.11.2",
        "framework_version": "1.32.0",
        "cuda_build": False,
        "gpu_used": False,
        "network": {"interfaces": ["lo"], "connection_failed": True},
        "parity": {"2": parity},
        "latency": latency,
        "outputs": {
            "2": {
                "y": {**parity, "exact": False, "count": 8, "ratio": 0.1, "mismatches": 0},
                "mask": {**parity, "exact": True, "count": 8, "ratio": 0.0, "mismatches": 0},
            }
        },
        "worst_output": {"2": "y"},
        "settings": [
            {
                "label": "all",
                "setting": {"level": "all", "offline": False},
                "load_seconds": 0.01,
                "latency": latency,
                "parity": parity,
                "nodes_before": 4,
                "nodes_after": 3,
            },
            {
                "label": "all offline",
                "setting": {"level": "all", "offline": True},
                "load_seconds": 0.004,
                "latency": latency,
                "nodes_before": 4,
                "nodes_after": 3,
                "optimise_seconds": 0.02,
            },
        ],
    }
    return {**base, **overrides}


def outcome(found: dict[str, Any]) -> ContainerOutcome:
    return ContainerOutcome(0, program.RESULT_PREFIX + json.dumps(found) + "\n", "", seconds=1.0)


def run(framework: str, requests: tuple[ModelRequest, ...], engine: FakeEngine) -> SmokeResult:
    kind = InferenceSmoke(
        framework, "cpu", (1, 4), models=requests, settings=("offline",), frameworks=("onnx",)
    )
    kind.check()
    options = SmokeOptions(cold_starts=1)
    context = SmokeContext(engine, "img", options, {}, gpus=False, volume="v")
    return kind.run(context)


def test_a_framework_without_a_form_of_the_model_is_not_applicable_and_runs_nothing(
    tmp_path: Path,
) -> None:
    request = ModelRequest(str(tiny_onnx(tmp_path / "m.onnx", batch=2)))
    engine = FakeEngine(run_result=lambda image, spec: outcome(report()))
    smoke = run("pytorch", (request,), engine)
    assert smoke.status == Status.OK
    assert model_of(smoke).not_applicable == "an ONNX model has no PyTorch form"
    assert smoke.message == "not applicable: an ONNX model has no PyTorch form"
    assert model_of(smoke).model is not None and model_of(smoke).model.fixed_batch == 2
    assert engine.runs == []


def test_every_output_and_setting_is_read_and_each_model_gets_its_folder(tmp_path: Path) -> None:
    first = ModelRequest(str(tiny_onnx(tmp_path / "a.onnx", batch=2)))
    (tmp_path / "b").mkdir()
    second = ModelRequest(str(tiny_onnx(tmp_path / "b" / "b.onnx", batch=2)))
    engine = FakeEngine(run_result=lambda image, spec: outcome(report()))
    smoke = run("onnx", (first, second), engine)
    assert smoke.status == Status.OK, smoke.message
    folders = [
        next(a for a in spec.command if a.startswith("--artifacts=")) for _, spec in engine.runs
    ]
    assert folders == ["--artifacts=/buildbench", "--artifacts=/buildbench/m1"]
    settings = json.loads(
        next(a for a in engine.runs[0][1].command if a.startswith("--settings="))[11:]
    )
    assert [(s["level"], s["offline"]) for s in settings] == [("all", False), ("all", True)]
    assert (
        set(model_of(smoke).outputs["2"]) == {"y", "mask"}
        and model_of(smoke).outputs["2"]["mask"].exact
    )
    assert model_of(smoke).worst_output == {"2": "y"}
    assert [(s.label, s.nodes_after, s.load_seconds) for s in model_of(smoke).settings] == [
        ("all", 3, 0.01),
        ("all offline", 3, 0.004),
    ]
    assert [model_of(m).model.source for m in model_of(smoke).more_models if model_of(m).model] == [
        second.spec
    ]


def test_every_models_parity_is_in_the_results_and_labelled_in_the_report(
    tmp_path: Path,
) -> None:
    """Two models in one cell: results.json has each one's parity summary, and the report's
    smoke table gives each model its own row, named, with its own parity."""
    first = ModelRequest(str(tiny_onnx(tmp_path / "a.onnx", batch=2)))
    (tmp_path / "b").mkdir()
    second = ModelRequest(str(tiny_onnx(tmp_path / "b" / "b.onnx", batch=2)))
    off = {"max_abs_diff": 0.25, "max_rel_diff": 0.5, "ok": False}

    def result(image: str, spec: ContainerSpec) -> ContainerOutcome:
        if "--artifacts=/buildbench/m1" in spec.command:
            return outcome(report(parity={"2": off}))
        return outcome(report())

    smoke = run("onnx", (first, second), FakeEngine(run_result=result))
    record = CellRecord("onnx", "cpu", "onnx", "d", {}, "h", smoke=smoke)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    info = load_results(CURRENT).info
    write_results(run_dir, results_document(info, [record], FIGURES))
    saved = json.loads((run_dir / "results.json").read_text())["results"][0]["smoke"]
    detail = saved["detail"]
    assert detail["parity_summary"] == {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "ok": True}
    assert [m["detail"]["parity_summary"] for m in detail["more_models"]] == [off]
    assert detail["more_models"][0]["detail"]["latency"]["2"]["quantiles"]["n"] == 2
    text = render_markdown([load_results(run_dir)], "none")
    table = text.split("## Smoke tests")[1].split("\n\n")[1].splitlines()
    assert [c.strip() for c in table[0].split("|")[1:5]] == ["cell", "model", "smoke", "parity"]
    rows = [[c.strip() for c in line.split("|")[1:5]] for line in table[2:]]
    assert rows == [
        ["onnx/cpu", f"`{first.spec}`", "smoke_failed", "ok, max abs diff 0.0e+00"],
        ["onnx/cpu", f"`{second.spec}`", "smoke_failed", "FAIL, max abs diff 2.5e-01"],
    ]
    row = cell_row(info, "vm", record)  # the CSV's one row a cell: the worst of every model
    assert (row["parity_ok"], row["parity_max_abs_diff"]) == (False, 0.25)


def test_a_failing_further_model_fails_the_cell_and_is_named(tmp_path: Path) -> None:
    first = ModelRequest(str(tiny_onnx(tmp_path / "a.onnx", batch=2)))
    (tmp_path / "b").mkdir()
    second = ModelRequest(str(tiny_onnx(tmp_path / "b" / "b.onnx", batch=2)))

    def result(image: str, spec: ContainerSpec) -> ContainerOutcome:
        if "--artifacts=/buildbench/m1" in spec.command:
            bad = {"max_abs_diff": 0.5, "max_rel_diff": 0.5, "ok": False}
            return outcome(report(parity={"2": bad}, worst_output={"2": "mask"}))
        return outcome(report())

    smoke = run("onnx", (first, second), FakeEngine(run_result=result))
    assert smoke.status == Status.SMOKE_FAILED
    assert smoke.message == (
        f"{second.spec}: outputs differ from the reference: max abs diff 0.5 (worst: mask)"
    )


def test_a_different_model_is_not_comparable() -> None:
    def cell(sha: str) -> CellRecord:
        model = ModelInfo("m.onnx", "onnx", sha, 1)
        smoke = SmokeResult(Status.OK, "ok", "model", detail=ModelDetail(model=model))
        return CellRecord("onnx", "cpu", "onnx", "d", {}, "h", smoke=smoke)

    assert differences(cell("a" * 64), cell("a" * 64)) == []
    assert differences(cell("a" * 64), cell("b" * 64)) == ["smoke test"]
