"""BuildKit for real: a tiny two-stage image through the Docker CLI, checked against the engine."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from buildbench.buildkit import build_once_buildkit
from buildbench.context import PipInputs, build_context
from buildbench.docker_engine import DockerEngine
from buildbench.errors import BuildFailed, EngineUnavailable
from buildbench.matrix import Cell
from buildbench.pipeline import LABEL_CELL, LABEL_RUN

pytestmark = pytest.mark.integration

TINY = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS builder
ARG CUDA=
RUN echo "cuda=${CUDA}" > /variant

FROM ${BASE_IMAGE}
COPY --from=builder /variant /variant
RUN cat /variant
"""


def _cell(tmp_path: Path, base_image: str, text: str = TINY) -> Cell:
    (tmp_path / "tiny.dockerfile").write_text(text)
    return Cell(
        name="tiny",
        variant="cuda",
        dockerfile=tmp_path / "tiny.dockerfile",
        context=tmp_path,
        build_args={"CUDA": "true", "BASE_IMAGE": base_image, "UNUSED": "1"},
    )


def _build(cell: Cell, tag: str, run_id: str, lines: list[str] | None = None):
    context, dockerfile = build_context(cell, PipInputs())
    with context:
        return build_once_buildkit(
            context,
            dockerfile=dockerfile,
            tag=tag,
            buildargs=cell.build_args,
            labels={LABEL_RUN: run_id, LABEL_CELL: cell.key},
            on_log=(lines if lines is not None else []).append,
        )


def test_buildkit_build_matches_the_engines_image(
    engine: DockerEngine, base_image: str, tmp_path: Path
) -> None:
    run_id = f"test-buildkit-{secrets.token_hex(3)}"
    tag = f"buildbench/tiny:cuda-{run_id}"
    lines: list[str] = []
    sample = _build(_cell(tmp_path, base_image), tag, run_id, lines)
    try:
        inspect = [shutil.which("docker") or "docker", "image", "inspect", "--format={{.Id}}", tag]
        assert sample.image_id == subprocess.check_output(inspect, text=True).strip()
        info = engine.image(tag)
        assert info is not None and info.labels[LABEL_RUN] == run_id
        assert [text for _, text, _ in sample.steps] == [
            f"FROM docker.io/{base_image}",
            'RUN echo "cuda=true" > /variant',
            "COPY --from=builder /variant /variant",
            "RUN cat /variant",
        ]
        assert all(seconds >= 0 for _, _, seconds in sample.steps)
        assert 0 < (sample.first_output_seconds or 0) < sample.seconds
        assert sample.warnings == ["build-args never consumed by the Dockerfile: UNUSED"]
        assert sample.stage_images == []
        assert any(line.endswith(" cuda=true") for line in lines)
        assert engine.images_labelled(f"{LABEL_RUN}={run_id}") == [info.id]  # no stage images
    finally:
        engine.remove_image(tag)


def test_buildkit_failure_is_a_failed_build_with_the_reason(
    base_image: str, tmp_path: Path
) -> None:
    cell = _cell(tmp_path, base_image, f"FROM {base_image}\nRUN echo no >&2 && exit 3\n")
    with pytest.raises(BuildFailed, match="exit code: 3") as failed:
        _build(cell, "buildbench/tiny:failing", "test-buildkit-failing")
    assert any(line.endswith(" no") for line in failed.value.log_tail)


def test_buildkit_without_an_engine(
    base_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nowhere.sock")
    with pytest.raises(EngineUnavailable, match=r"(?i)cannot connect to the Docker daemon"):
        _build(_cell(tmp_path, base_image), "buildbench/tiny:none", "test-buildkit-none")
