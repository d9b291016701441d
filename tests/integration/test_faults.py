"""Broken images end in the right status with a clear message, and the other cells still run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from buildbench.engine.dockersdk import DockerEngine
from buildbench.engine.factory import choose_builder
from buildbench.labels import LABEL_RUN
from buildbench.measure.smoke.kinds.model.config import ModelConfig
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.record import CellRecord, model_of
from buildbench.results import RunResults
from buildbench.run.matrix import Cell
from buildbench.run.pipconfig import pip_inputs
from buildbench.run.plan import RunPlan
from buildbench.run.prepare import prepare
from buildbench.run.progress import Silent
from buildbench.status import Status
from tests.integration.conftest import remove_runs

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
    # The built-in CPU ONNX Runtime image, labelled CUDA (its CUDA build-arg set to "").
    "cpuascuda": None,
}


@pytest.fixture(scope="module")
def broken_run(
    engine: DockerEngine, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunResults]:
    folder = tmp_path_factory.mktemp("faults")
    cells = []
    for name, text in DOCKERFILES.items():
        if text is None:
            root = Path(__file__).resolve().parents[2] / "dockerfiles"
            cells.append(
                Cell(
                    name,
                    "cuda",
                    root / "onnx.dockerfile",
                    root,
                    {"CUDA": "", "BASE_IMAGE": base_image},
                    framework="onnx",
                    build_inputs=True,
                    smoke=ModelConfig("onnx"),
                )
            )
            continue
        dockerfile = folder / f"{name}.dockerfile"
        dockerfile.write_text(text.format(base=base_image))
        gpu = name == "gpunolibs"
        cells.append(
            Cell(
                name,
                "cuda" if gpu else "cpu",
                dockerfile,
                folder,
                {"BASE_IMAGE": base_image},
                framework="onnx" if gpu else "pytorch",
                build_inputs=gpu,
                smoke=ModelConfig("onnx" if gpu else "pytorch"),
            )
        )
    plan = RunPlan(
        cells=cells,
        base_image=base_image,
        results_dir=folder / "results",
        pip=pip_inputs(),
        smoke=SmokeOptions(
            batch_sizes=(1,), timeout_seconds=30, min_runs=1, min_seconds=0, cold_starts=1
        ),
        read_images=False,
    )
    with prepare(engine, plan, choose_builder("classic", engine, engine.address)) as run:
        run.run_all(Silent())
    yield RunResults(run.info, run.records)  # the run is over: its volume and lock are gone
    remove_runs(engine, folder / "results")


def _by_name(run: RunResults) -> dict[str, CellRecord]:
    return {r.name: r for r in run.records}


def test_a_failed_build_keeps_its_log_tail_and_the_rest_runs(broken_run: RunResults):
    records = _by_name(broken_run)
    assert records["broken"].status == Status.BUILD_FAILED
    assert "returned a non-zero code: 3" in (records["broken"].error or "")
    assert any("about to fail" in line for line in records["broken"].log_tail)
    assert records["hangs"].image_id and records["noframework"].image_id


def test_a_hanging_container_is_killed_and_removed(broken_run: RunResults, client):
    records = _by_name(broken_run)
    assert records["hangs"].status == Status.SMOKE_TIMEOUT
    assert records["hangs"].smoke and "killed" in records["hangs"].smoke.message
    label = f"{LABEL_RUN}={broken_run.info.run_id}"
    assert client.containers.list(all=True, filters={"label": label}) == []


def test_an_image_without_the_framework_fails_with_a_clear_message(broken_run: RunResults):
    record = _by_name(broken_run)["noframework"]
    assert record.status == Status.SMOKE_FAILED
    assert "the framework does not import" in (record.error or "")
    assert "torch" in (record.error or "")


def test_onnxruntime_gpu_without_cuda_libraries_is_an_invalid_variant(broken_run: RunResults):
    record = _by_name(broken_run)["gpunolibs"]
    assert record.smoke is not None
    assert "CUDAExecutionProvider" in (model_of(record.smoke).available_providers or [])
    assert record.status == Status.INVALID_VARIANT
    assert model_of(record.smoke).cuda_build is False
    assert "the CUDA provider cannot load: missing libcublas" in (
        model_of(record.smoke).cuda_note or ""
    )


def test_a_cpu_image_labelled_cuda_is_an_invalid_variant(broken_run: RunResults):
    record = _by_name(broken_run)["cpuascuda"]
    assert record.status == Status.INVALID_VARIANT
    assert record.error == "labelled CUDA, but its onnx is not a working CUDA build"


def test_no_container_or_volume_of_the_run_is_left(broken_run: RunResults, client):
    label = f"{LABEL_RUN}={broken_run.info.run_id}"
    assert client.containers.list(all=True, filters={"label": label}) == []
    assert client.volumes.list(filters={"label": label}) == []
