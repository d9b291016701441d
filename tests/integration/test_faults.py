"""Broken images end in the right status with a clear message, and the other cells still run."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from buildbench import record as status
from buildbench.cli.options import default_ca_bundle
from buildbench.context import PipInputs
from buildbench.docker_engine import DockerEngine
from buildbench.matrix import Cell
from buildbench.pipeline import LABEL_RUN, RunConfig, Runner
from buildbench.record import CellRecord
from buildbench.smoke.runner import SmokeOptions, smoke_cell
from tests.integration.conftest import remove_run

pytestmark = pytest.mark.integration

DOCKERFILES = {
    "broken": "FROM {base}\nRUN echo 'about to fail' && exit 3\n",
    # Whatever the smoke test runs, `python` here never answers.
    "hangs": "FROM {base}\nRUN printf '#!/bin/sh\\nexec sleep 600\\n' > /usr/local/bin/python"
    " && chmod 755 /usr/local/bin/python\n",
    "noframework": "FROM {base}\nUSER 65534\n",
    # onnxruntime-gpu without its [cuda,cudnn] extras: lists the CUDA provider, cannot load it.
    "gpunolibs": "FROM {base}\nCOPY build-inputs/ /build-inputs/\n"
    "RUN python3 -m venv /opt/venv && PIP_CONFIG_FILE=/build-inputs/pip.conf"
    " /opt/venv/bin/pip install --no-cache-dir onnxruntime-gpu\nENV PATH=/opt/venv/bin:$PATH\n",
}


class Quiet:
    def cell_started(self, cell, index, total) -> None: ...
    def build_log(self, cell, line) -> None: ...
    def cell_finished(self, record) -> None: ...


@pytest.fixture(scope="module")
def broken_run(
    engine: DockerEngine, client: docker.DockerClient, base_image: str, tmp_path_factory
):
    folder = tmp_path_factory.mktemp("faults")
    cells = []
    for name, text in DOCKERFILES.items():
        dockerfile = folder / f"{name}.dockerfile"
        dockerfile.write_text(text.format(base=base_image))
        gpu = name == "gpunolibs"
        cells.append(
            Cell(
                name,
                "cuda" if gpu else "cpu",
                dockerfile,
                folder,
                framework="onnx" if gpu else "pytorch",
                build_inputs=gpu,
            )
        )
    config = RunConfig(
        cells=cells,
        base_image=base_image,
        results_dir=folder / "results",
        smoke=SmokeOptions(batch_sizes=(1,), timeout_seconds=30, runs=1),
        compressed_size=False,
        pip=PipInputs(ca_bundle=default_ca_bundle()),
    )
    runner = Runner(engine, config, Quiet())
    runner.start()
    records = {r.name: r for r in runner.run_all()}
    yield records, runner
    remove_run(client, runner.run.run_id)


def test_a_failed_build_keeps_its_log_tail_and_the_rest_runs(broken_run):
    records, _ = broken_run
    assert records["broken"].status == status.BUILD_FAILED
    assert "returned a non-zero code: 3" in records["broken"].error
    assert any("about to fail" in line for line in records["broken"].log_tail)
    assert records["hangs"].image_id and records["noframework"].image_id


def test_a_hanging_container_is_killed_and_removed(broken_run, client):
    records, runner = broken_run
    assert records["hangs"].status == status.SMOKE_TIMEOUT
    assert "killed" in records["hangs"].smoke["message"]
    label = f"{LABEL_RUN}={runner.run.run_id}"
    assert client.containers.list(all=True, filters={"label": label}) == []


def test_an_image_without_the_framework_fails_with_a_clear_message(broken_run):
    records, _ = broken_run
    assert records["noframework"].status == status.SMOKE_FAILED
    assert "the framework does not import" in records["noframework"].error
    assert "torch" in records["noframework"].error


def test_onnxruntime_gpu_without_cuda_libraries_is_an_invalid_variant(broken_run):
    records, _ = broken_run
    record = records["gpunolibs"]
    assert "CUDAExecutionProvider" in record.smoke["available_providers"]
    assert record.status == status.INVALID_VARIANT
    assert record.smoke["cuda_build"] is False
    assert "the CUDA provider cannot load: missing libcublas" in record.smoke["cuda_note"]


def test_a_cpu_image_labelled_cuda_is_an_invalid_variant(matrix_run, engine, tmp_path: Path):
    cpu = matrix_run["cells"]["onnx/cpu"]
    cell = Cell("onnx", "cuda", Path(cpu["dockerfile"]), Path("."), framework="onnx")
    record = CellRecord(
        "onnx", "cuda", "onnx", status.OK, cpu["dockerfile"], {}, "", image_id=cpu["image_id"]
    )
    artifacts = matrix_run["run_dir"] / "smoke-artifacts"
    options = SmokeOptions(runs=1)
    smoke_cell(
        engine,
        cell,
        record,
        options=options,
        artifacts=artifacts,
        labels={LABEL_RUN: matrix_run["data"]["run"]["run_id"]},
    )
    assert record.status == status.INVALID_VARIANT
    assert record.error == "labelled CUDA, but its onnx is not a working CUDA build"
