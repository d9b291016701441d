"""The course exercise's own Dockerfiles (stand-ins with the same shape), unmodified, through
buildbench: their `FROM python:3.11-slim` is this machine's base, which trusts the proxy's CA
system-wide, as corporate base images do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from buildbench.engine.dockersdk import DockerEngine
from tests.integration.conftest import ROOT, Ran, buildbench, remove_runs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def course_run(
    base_image: str, engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ran]:
    cwd = tmp_path_factory.mktemp("course")
    ran = buildbench(
        "run",
        "--config",
        str(ROOT / "examples/course/buildbench.toml"),
        "--only",
        "course-onnx",
        "--only",
        "course-pytorch/cpu",
        "--latency-runs",
        "3",
        "--latency-seconds",
        "0",
        "--cold-starts",
        "1",
        "--batch-sizes",
        "1",
        cwd=cwd,
    )
    yield ran
    remove_runs(engine, cwd / "results")


def test_the_run_completes_and_exits_one_for_the_failed_cells(course_run: Ran):
    assert course_run.process.returncode == 1
    assert sorted(course_run.cells()) == [
        "course-onnx/cpu",
        "course-onnx/cuda",
        "course-pytorch/cpu",
    ]
    assert "failed cells:" in course_run.process.stderr


def test_the_onnx_dockerfile_is_flagged_for_its_ignored_build_arg(course_run: Ran):
    for key in ("course-onnx/cpu", "course-onnx/cuda"):
        warnings = course_run.cells()[key]["warnings"]
        assert "build-args never consumed by the Dockerfile: CUDA" in warnings


def test_its_cuda_image_is_a_cpu_image(course_run: Ran):
    cells = course_run.cells()
    cpu, cuda = cells["course-onnx/cpu"], cells["course-onnx/cuda"]
    assert cpu["status"] == "ok" and cpu["smoke"]["detail"]["parity_summary"]["ok"] is True
    assert cuda["status"] == "invalid_variant"
    assert cuda["smoke"]["detail"]["cuda_build"] is False
    assert cuda["image"]["framework_version"] == cpu["image"]["framework_version"]


def test_the_terminal_says_why_a_cell_failed(course_run: Ran):
    assert "invalid_variant: labelled CUDA, but its onnx is not a working CUDA build" in (
        course_run.process.stderr
    )


def test_its_toolchain_layer_shows_as_waste(course_run: Ran):
    """The course's ONNX image installs build-essential that nothing uses at run time."""
    cell = course_run.cells()["course-onnx/cpu"]
    toolchain = [f for f in cell["contents"]["findings"] if f["kind"] == "toolchain"]
    assert toolchain and toolchain[0]["bytes"] > 150_000_000
    assert "build-essential" in toolchain[0]["instruction"]
    assert {"gcc-12", "g++-12", "cpp-12"} <= set(toolchain[0]["packages"])


def test_the_pytorch_dockerfile_fails_on_its_unreachable_wheel_index(course_run: Ran):
    cell = course_run.cells()["course-pytorch/cpu"]
    assert cell["status"] == "build_failed"
    tail = "\n".join(cell["log_tail"])
    assert "download.pytorch.org" in tail or "No matching distribution found for torch" in tail
    # The terminal names the reason (the engine's error line) and pip's last lines.
    stderr = course_run.process.stderr
    assert "build_failed: The command '/bin/sh -c echo \"CUDA build-arg:" in stderr
    assert "| ERROR: No matching distribution found for torch" in stderr
