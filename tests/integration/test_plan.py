"""What a run builds, decided before any build, as a new user sees it: the installed console
script in a fresh directory, a config of two one-line CPU-only images (`variants = { cpu = "" }`,
as the README shows) and an ONNX model. The image whose framework runs no model is not built;
the other builds in seconds, with no warning about a CUDA build-arg it never asked for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from buildbench.engine.dockersdk import DockerEngine
from tests.integration.conftest import Ran, buildbench, remove_runs
from tests.unit.test_modelspec import tiny_onnx

pytestmark = pytest.mark.integration

CONFIG = """\
[[image]]
name = "tiny-torch"
dockerfile = "Dockerfile"
variants = { cpu = "" }
smoke = "pytorch"

[[image]]
name = "tiny-onnx"
dockerfile = "Dockerfile"
variants = { cpu = "" }
smoke = "onnx"
"""
NOT_BUILT = (
    "not built: tiny-torch/cpu: no model runs on pytorch (m.onnx: an ONNX model has no PyTorch "
    "form)"
)


@pytest.fixture(scope="module")
def project(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("plan")
    (cwd / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo built\n")
    (cwd / "buildbench.toml").write_text(CONFIG)
    tiny_onnx(cwd / "m.onnx")
    return cwd


@pytest.fixture(scope="module")
def plan_run(project: Path, engine: DockerEngine) -> Iterator[Ran]:
    ran = buildbench("run", "--model", "m.onnx", cwd=project)
    yield ran
    remove_runs(engine, project / "results")


def test_list_says_which_cell_is_not_built_and_passes_no_cuda_arg(project: Path):
    ran = buildbench("list", "--model", "m.onnx", cwd=project)
    assert ran.process.returncode == 0, ran.process.stderr
    out = ran.process.stdout
    assert out.startswith("matrix: buildbench.toml, 1 cell\n")
    assert NOT_BUILT in out.splitlines()
    row = next(line for line in out.splitlines() if line.startswith("tiny-onnx/cpu"))
    assert "CUDA" not in row  # build-args column empty: nothing to be warned about


def test_the_run_builds_only_the_image_a_model_runs_on(plan_run: Ran):
    stderr = plan_run.process.stderr
    assert NOT_BUILT in stderr, stderr  # the header, before the first cell
    assert stderr.index(NOT_BUILT) < stderr.index("[1/1] tiny-onnx/cpu")
    assert list(plan_run.cells()) == ["tiny-onnx/cpu"]
    options = plan_run.data()["run"]["options"]
    assert options["not_built"] == {"tiny-torch/cpu": NOT_BUILT.split(": ", 2)[2]}


def test_a_cpu_only_image_is_not_warned_about_a_cuda_arg(plan_run: Ran):
    cell = plan_run.cells()["tiny-onnx/cpu"]
    assert cell["build"]["seconds"], plan_run.process.stderr  # it was built
    assert cell["build_args"] == {}
    assert not [w for w in cell["warnings"] if "never consumed" in w]
    assert "never consumed" not in plan_run.process.stderr


def test_a_model_with_no_smoke_test_is_refused_before_anything(
    project: Path, engine: DockerEngine, tmp_path: Path
):
    for name in ("Dockerfile", "buildbench.toml", "m.onnx"):  # were it built: seconds
        (tmp_path / name).write_bytes((project / name).read_bytes())
    try:
        ran = buildbench("run", "--no-smoke", "--model", "m.onnx", cwd=tmp_path)
    finally:
        if (tmp_path / "results").exists():
            remove_runs(engine, tmp_path / "results")
    assert ran.process.returncode == 2, ran.process.stderr
    lines = ran.process.stderr.splitlines()
    assert lines[0] == "ERROR: --model needs the smoke test: --no-smoke runs no model"
    assert lines[1].startswith("TIP: drop --no-smoke")
    assert not (tmp_path / "results").exists()
