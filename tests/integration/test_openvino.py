"""`--framework openvino` as a new user runs it: the installed console script in a fresh
directory, the built-in model, both variants asked for. The CPU image is built once and proven by
the smoke test; the "cuda" cell is not applicable with the reason, never built and no failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import Ran, buildbench, remove_runs

pytestmark = pytest.mark.integration

NO_CUDA = (
    "not applicable: OpenVINO has no CUDA build: its GPU plugin is for Intel GPUs, not NVIDIA's"
)


@pytest.fixture(scope="module")
def openvino_run(
    base_image: str, engine: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ran]:
    cwd = tmp_path_factory.mktemp("user")
    ran = buildbench(
        "run",
        "--framework",
        "openvino",
        "--cuda",
        "both",
        "--batch-sizes",
        "1,2",
        "--latency-seconds",
        "0.2",
        "--latency-runs",
        "5",
        "--cold-starts",
        "1",
        "--no-read-images",
        cwd=cwd,
        timeout=1200,
    )
    assert ran.results, f"no results:\n{ran.process.stdout}\n{ran.process.stderr[-3000:]}"
    yield ran
    remove_runs(engine, cwd / "results")  # type: ignore[arg-type]


def test_the_cpu_cell_runs_the_built_in_model_with_parity(openvino_run: Ran) -> None:
    assert openvino_run.process.returncode == 0, openvino_run.process.stderr[-3000:]
    cells = openvino_run.cells()
    assert set(cells) == {"openvino/cpu"}
    cell = cells["openvino/cpu"]
    assert cell["status"] == "ok" and cell["framework"] == "openvino"
    assert cell["dockerfile"].endswith("openvino.dockerfile")
    assert cell["image"]["framework_version"]
    smoke = {**cell["smoke"], **cell["smoke"]["detail"]}
    assert smoke["status"] == "ok" and not smoke["not_applicable"], smoke["message"]
    assert smoke["cuda_build"] is False and smoke["gpu_used"] is False
    for batch in ("1", "2"):
        assert smoke["parity"][batch]["ok"], smoke["parity"][batch]
        assert all(o["ok"] for o in smoke["outputs"][batch].values())
        assert len(smoke["latency"][batch]["samples"]) >= 5
    (startup,) = smoke["startup"]
    assert startup["framework_import"] > 0 and startup["model_load"] > 0
    assert smoke["peak_memory_bytes"] > 0


def test_the_cuda_cell_is_not_applicable_with_the_reason(openvino_run: Ran) -> None:
    options = openvino_run.data()["run"]["options"]
    assert options["not_built"] == {"openvino/cuda": NO_CUDA}
    assert options["cells"] == ["openvino/cpu"]
    stderr = openvino_run.process.stderr  # the run's header, before the first cell
    assert stderr.index(f"not built: openvino/cuda: {NO_CUDA}") < stderr.index("[1/1] openvino/cpu")
    report = next(openvino_run.cwd.glob("results/*/report.md")).read_text()
    assert f"Not built: openvino/cuda: {NO_CUDA}." in report
