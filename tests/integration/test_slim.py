"""`buildbench run --slim` as a user runs it, on the built-in CPU images and a user's FastAPI
service: the smoke test is traced, a candidate of only what it touched is built by the engine
and passes the same smoke test (parity for models, the service's own check for a service), for
the built-in model (named as `--model`, as the default is) and a user's ONNX file beside it in
the same run; a candidate with one traced shared object left out fails its smoke test and says
so, and the cell stays as measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from buildbench.engine.dockersdk import DockerEngine
from buildbench.measure.smoke.artifacts import DEFAULT_MODEL
from tests.integration import test_serve as serve
from tests.integration.conftest import Ran, buildbench, remove_runs
from tests.unit.test_modelspec import tiny_onnx

pytestmark = pytest.mark.integration

QUICK = ["--cuda", "cpu", "--latency-seconds", "0.2", "--cold-starts", "1", "--batch-sizes", "1"]
QUICK += ["--no-keep-images", "-q"]
SHORT = [*QUICK, "--framework", "onnx"]
DROPPED = "onnxruntime_pybind11_state"  # ONNX Runtime's own extension module


def slim_run(tmp_path: Path, engine: DockerEngine, *more: str) -> tuple[Ran, dict[str, Any]]:
    ran = buildbench("run", "--slim", *SHORT, *more, cwd=tmp_path, timeout=900)
    try:
        assert ran.process.returncode == 0, ran.process.stderr[-3000:]
        return ran, ran.cells()["onnx/cpu"]
    finally:
        remove_runs(engine, tmp_path / "results")


def proven(
    cell: dict[str, Any], engine: DockerEngine, *touched: str, model: bool = True
) -> tuple[dict, dict]:
    """The cell measured, its trace, and a proven candidate between the traced bytes and the
    original's size (with parity of every output, for a `model`), removed with the run's
    images; `touched`: distributions the trace saw."""
    trace, slim = cell["trace"], cell["slim"]
    assert cell["status"] == "ok" and cell["smoke"]["status"] == "ok", cell["smoke"]["message"]
    assert trace["note"] is None and trace["processes"] >= 1
    assert slim["status"] == "proven", slim["message"]
    assert slim["smoke"]["status"] == "ok"
    parity = slim["smoke"]["detail"].get("parity", {})  # a service's detail has none
    assert bool(parity) == model and all(p["ok"] for p in parity.values())
    assert trace["touched_bytes"] <= slim["size_bytes"] < cell["image"]["size_bytes"]
    assert slim["compressed_size_bytes"] < cell["image"]["compressed_size_bytes"]
    for name in touched:
        found = next(d for d in trace["distributions"] if d["name"] == name)
        assert 0 < found["touched_bytes"] <= found["bytes"], found
    assert engine.image(slim["tag"]) is None  # removed with the run's images
    return trace, slim


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory, engine: DockerEngine, base_image: str
) -> tuple[Ran, dict[str, Any]]:
    cwd = tmp_path_factory.mktemp("slim")
    tiny_onnx(cwd / "tiny.onnx")
    return slim_run(cwd, engine, "--model", DEFAULT_MODEL, "--model", "tiny.onnx")


def test_a_slim_candidate_passes_the_same_smoke_test_and_is_smaller(
    traced: tuple[Ran, dict[str, Any]], engine: DockerEngine
) -> None:
    ran, cell = traced
    trace, slim = proven(cell, engine, "onnxruntime")
    assert (
        slim["smoke"]["detail"]["latency"]["1"]["samples"] and slim["smoke"]["cold_start_seconds"]
    )
    report = (ran.results[0].parent / "report.md").read_text()
    assert "inference touched" in report and "What inference needs" in report
    kept = json.loads((ran.results[0].parent / trace["file"]).read_text())["kept"]
    assert any(DROPPED in path for path in kept)


def test_a_users_model_file_is_traced_and_its_candidate_proven_with_parity(
    traced: tuple[Ran, dict[str, Any]],
) -> None:
    _, cell = traced
    user = [cell["smoke"]["detail"]["more_models"], cell["slim"]["smoke"]["detail"]["more_models"]]
    for original, candidate in zip(*user, strict=True):  # the cell's, then the candidate's
        source = original["detail"]["model"]["source"]
        assert source == candidate["detail"]["model"]["source"] == "tiny.onnx"
        for smoke in (original, candidate):
            assert smoke["status"] == "ok", smoke["message"]
            assert all(o["ok"] for o in smoke["detail"]["outputs"]["1"].values())
    assert [len(u) for u in user] == [1, 1]
    assert cell["trace"]["containers"] >= 2  # a full run for each model, at least


def test_a_candidate_without_a_traced_shared_object_fails_and_says_so(
    traced: tuple[Ran, dict[str, Any]], tmp_path: Path, engine: DockerEngine
) -> None:
    ran, cell = traced
    kept = json.loads((ran.results[0].parent / cell["trace"]["file"]).read_text())["kept"]
    dropped = next(path for path in kept if DROPPED in path and path.endswith(".so"))
    _, again = slim_run(tmp_path, engine, "--slim-exclude", dropped)
    slim = again["slim"]
    assert again["status"] == "ok"  # the cell stays as measured
    assert slim["status"] == "failed" and slim["excluded"] == [dropped]
    assert "smoke test failed" in slim["message"] and DROPPED in slim["message"], slim


def test_the_pytorch_cpu_image_is_slimmed_and_proven_with_parity(
    tmp_path: Path, engine: DockerEngine
) -> None:
    ran = buildbench("run", "--slim", *QUICK, "--framework", "pytorch", cwd=tmp_path, timeout=1500)
    try:
        assert ran.process.returncode == 0, ran.process.stderr[-3000:]
        cell = ran.cells()["pytorch/cpu"]
        proven(cell, engine, "torch")
    finally:
        remove_runs(engine, tmp_path / "results")


def test_a_users_fastapi_service_is_traced_and_its_candidate_proven(
    tmp_path: Path, engine: DockerEngine, base_image: str
) -> None:
    """A user-style service (test_serve.py's FastAPI app, multi-stage, non-root), traced while
    it serves; its candidate answers the same requests with the same check. It logs each
    request (uvicorn's access log, and three lines of its own): thousands of lines, far more
    than the log tail buildbench reads, and its trace reaches buildbench all the same."""
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "Dockerfile").write_text(serve.DOCKERFILE)
    (tmp_path / "svc" / "app.py").write_text(serve.APP)
    (tmp_path / "buildbench.toml").write_text(
        '[[image]]\nname = "svc"\ndockerfile = "svc/Dockerfile"\nvariants = { cpu = "" }\n'
        f'build_inputs = true\nbuild_args = {{ MODE = "chatty", BASE_IMAGE = "{base_image}" }}\n'
        f"{serve.SMOKE}"
    )
    ran = buildbench("run", "--slim", "--no-keep-images", "-q", cwd=tmp_path, timeout=900)
    try:
        assert ran.process.returncode == 0, ran.process.stderr[-3000:]
        cell = ran.cells()["svc/cpu"]
        tail = cell["smoke"]["output_tail"]
        assert any('"POST /predict HTTP/1.1" 200' in line for line in tail), tail  # logged
        assert not any("BUILDBENCH_TRACE" in line for line in tail)
        trace, slim = proven(cell, engine, "fastapi", "uvicorn", model=False)
        assert trace["processes"] >= 2  # the service's and its load generator's
        assert not any("printed no trace" in line for line in trace["untraced"]), trace
        assert "with the original's checks" in slim["message"]
        assert slim["smoke"]["detail"]["levels"], slim["smoke"]  # it served every level
    finally:
        remove_runs(engine, tmp_path / "results")
