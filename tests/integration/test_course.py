"""The course exercise's own Dockerfiles, unmodified, run through buildbench here.

They start FROM python:3.11-slim and pip install from PyPI system-wide: with no registry and a
TLS proxy, that base is made with `buildbench base --tag python:3.11-slim --ca-bundle`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from buildbench.base import make_base_image
from buildbench.cli.options import default_ca_bundle
from buildbench.docker_engine import DockerEngine
from tests.integration.conftest import remove_run

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SLIM = "python:3.11-slim"


@pytest.fixture(scope="module")
def slim_base(engine: DockerEngine, client: docker.DockerClient) -> Iterator[str]:
    created = engine.image(SLIM) is None
    if created:
        make_base_image(engine, tag=SLIM, ca_bundle=default_ca_bundle())
    yield SLIM
    if created:
        client.images.remove(SLIM)


@pytest.fixture(scope="module")
def course_run(slim_base: str, client: docker.DockerClient, tmp_path_factory) -> Iterator[dict]:
    results = tmp_path_factory.mktemp("course")
    command = [
        sys.executable,
        "-m",
        "buildbench",
        "run",
        "--config",
        str(ROOT / "examples/course/buildbench.toml"),
        "--only",
        "course-onnx",
        "--only",
        "course-pytorch/cpu",
        "--smoke-runs",
        "2",
        "--batch-sizes",
        "1",
        "--no-compressed-size",
        "--results-dir",
        str(results),
    ]
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    data = json.loads(next(results.glob("*/results.json")).read_text())
    yield {"process": process, "cells": {f"{r['name']}/{r['variant']}": r for r in data["results"]}}
    remove_run(client, data["run"]["run_id"])


def test_the_run_completes_and_exits_one_for_the_failed_cells(course_run):
    assert course_run["process"].returncode == 1
    assert sorted(course_run["cells"]) == [
        "course-onnx/cpu",
        "course-onnx/cuda",
        "course-pytorch/cpu",
    ]
    assert "failed cells:" in course_run["process"].stderr


def test_the_onnx_dockerfile_is_flagged_for_its_ignored_build_arg(course_run):
    for key in ("course-onnx/cpu", "course-onnx/cuda"):
        assert (
            "build-args never consumed by the Dockerfile: CUDA"
            in course_run["cells"][key]["warnings"]
        )


def test_its_cuda_image_is_a_cpu_image(course_run):
    cpu, cuda = course_run["cells"]["course-onnx/cpu"], course_run["cells"]["course-onnx/cuda"]
    assert cpu["status"] == "ok" and cpu["smoke"]["parity_summary"]["ok"] is True
    assert cuda["status"] == "invalid_variant"
    assert cuda["smoke"]["cuda_build"] is False
    assert cuda["framework_version"] == cpu["framework_version"]


def test_the_pytorch_dockerfile_fails_on_its_unreachable_wheel_index(course_run):
    cell = course_run["cells"]["course-pytorch/cpu"]
    assert cell["status"] == "build_failed"
    tail = "\n".join(cell["log_tail"])
    assert "download.pytorch.org" in tail or "No matching distribution found for torch" in tail
