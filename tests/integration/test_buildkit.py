"""BuildKit for real: a tiny two-stage image through the Docker CLI, checked against the engine;
its cache records are reported as they are made, and go with a failed build."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from buildbench.engine.builders import BuildRequest, BuildSample
from buildbench.engine.buildkit import BuildkitBuilder
from buildbench.engine.dockersdk import DockerEngine
from buildbench.engine.endpoint import from_url
from buildbench.errors import BuildFailed, EngineUnavailable
from buildbench.labels import LABEL_RUN, run_labels
from buildbench.run.context import build_context
from buildbench.run.matrix import Cell
from buildbench.run.pipconfig import PipInputs

pytestmark = [pytest.mark.integration, pytest.mark.alone]  # see scripts/test

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


def _build(
    engine: DockerEngine,
    cell: Cell,
    tag: str,
    run_id: str,
    lines: list[str] | None = None,
    created: list[tuple[str, str]] | None = None,
) -> BuildSample:
    builder = BuildkitBuilder(engine, engine.address)
    context = build_context(cell, PipInputs())
    labels = run_labels(run_id, cell.key)
    return builder.build(
        context,
        BuildRequest(context.dockerfile, tag, cell.build_args, labels, context.dockerfile_text),
        (lines if lines is not None else []).append,
        lambda kind, object_id: (created if created is not None else []).append((kind, object_id)),
    )


def test_buildkit_build_matches_the_engines_image(
    engine: DockerEngine, base_image: str, tmp_path: Path
) -> None:
    run_id = f"test-buildkit-{secrets.token_hex(3)}"
    tag = f"buildbench/tiny:cuda-{run_id}"
    lines: list[str] = []
    created: list[tuple[str, str]] = []
    sample = _build(engine, _cell(tmp_path, base_image), tag, run_id, lines, created)
    try:
        inspect = [shutil.which("docker") or "docker", "image", "inspect", "--format={{.Id}}", tag]
        assert sample.image_id == subprocess.check_output(inspect, text=True).strip()
        info = engine.image(tag)
        assert info is not None and info.labels[LABEL_RUN] == run_id
        assert [text for _, text, _ in sample.steps] == [
            f"FROM docker.io/library/{base_image}",
            'RUN echo "cuda=true" > /variant',
            "COPY --from=builder /variant /variant",
            "RUN cat /variant",
        ]
        assert all(seconds >= 0 for _, _, seconds in sample.steps)
        assert 0 < (sample.first_output_seconds or 0) < sample.seconds
        # The context was packed into the CLI inside the timed build.
        assert 0 < (sample.context_seconds or 0) < sample.seconds
        assert (sample.context_bytes or 0) > 0
        assert sample.warnings == ["build-args never consumed by the Dockerfile: UNUSED"]
        assert any(line.endswith(" cuda=true") for line in lines)
        assert engine.images_labelled(f"{LABEL_RUN}={run_id}") == [info.id]  # no stage images
        # Every cache record the build made was reported, in that order, and exists; one
        # BuildKit swapped for a new id after the build was reported too, and is gone.
        records = {record.id for record in engine.build_cache()}
        assert sample.cache_records and set(sample.cache_records) <= records
        assert {kind for kind, _ in created} == {"cache"}
        reported = [object_id for _, object_id in created]
        assert [r for r in reported if r in sample.cache_records] == sample.cache_records
        assert not (set(reported) - set(sample.cache_records)) & records
    finally:
        engine.remove_image(tag)
        engine.prune_cache_records(sample.cache_records)
    assert not set(sample.cache_records) & {record.id for record in engine.build_cache()}


def test_buildkit_failure_is_a_failed_build_with_the_reason_and_no_cache_left(
    engine: DockerEngine, base_image: str, tmp_path: Path
) -> None:
    cell = _cell(tmp_path, base_image, f"FROM {base_image}\nRUN echo no >&2 && exit 3\n")
    before = {record.id for record in engine.build_cache()}
    with pytest.raises(BuildFailed, match="exit code: 3") as failed:
        _build(engine, cell, "buildbench/tiny:failing", "test-buildkit-failing")
    assert any(line.endswith(" no") for line in failed.value.log_tail)
    assert {record.id for record in engine.build_cache()} <= before


def test_buildkit_without_an_engine(engine: DockerEngine, base_image: str, tmp_path: Path) -> None:
    nowhere = from_url(f"unix://{tmp_path}/nowhere.sock")
    builder = BuildkitBuilder(engine, nowhere)  # the CLI is pointed at an engine that is not there
    context = build_context(_cell(tmp_path, base_image), PipInputs())
    request = BuildRequest(context.dockerfile, "buildbench/tiny:none", {}, {})
    with pytest.raises(EngineUnavailable, match=r"(?i)cannot connect to the Docker"):
        builder.build(context, request, lambda line: None, lambda kind, object_id: None)
