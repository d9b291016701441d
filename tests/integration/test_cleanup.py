"""`buildbench clean` on the real engine, limited to a run id of its own."""

from __future__ import annotations

import io
import secrets
import tarfile

import docker
import pytest

from buildbench.build import build_once
from buildbench.cleanup import clean
from buildbench.docker_engine import DockerEngine
from buildbench.pipeline import LABEL_RUN

pytestmark = pytest.mark.integration


def _tiny_image(engine: DockerEngine, base_image: str, run_id: str) -> str:
    text = f"FROM {base_image}\nRUN echo tiny > /tiny\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    sample = build_once(
        engine,
        context,
        dockerfile="Dockerfile",
        tag=f"buildbench/tiny:cpu-{run_id}",
        buildargs={},
        labels={LABEL_RUN: run_id},
        on_log=lambda line: None,
    )
    return sample.image_id


def test_clean_removes_a_runs_containers_and_images(
    engine: DockerEngine, client: docker.DockerClient, base_image: str
) -> None:
    run_id = f"test-clean-{secrets.token_hex(3)}"
    image_id = _tiny_image(engine, base_image, run_id)
    container = client.containers.create(image_id, ["true"])  # inherits the image's labels
    try:
        planned = clean(engine, run_id=run_id, dry_run=True)
        assert [(i.kind, i.id) for i in planned.removed] == [
            ("container", container.id),
            ("image", image_id),
        ]
        assert engine.image(image_id) is not None
        done = clean(engine, run_id=run_id)
        assert [i.id for i in done.removed] == [container.id, image_id] and not done.kept
        assert engine.image(image_id) is None
        assert engine.containers_labelled(f"{LABEL_RUN}={run_id}") == []
    finally:
        engine.remove_container(container.id)
        engine.remove_image(image_id)
