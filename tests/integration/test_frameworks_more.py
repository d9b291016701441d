"""The other serving frameworks of the course in one run: `buildbench run --server litserve
...` from a fresh directory builds each one's CPU image once, serves a small model (two
inputs, float32 and int64; two outputs) locked down, and proves the answers against the host's
reference outputs, as each image starts it and again with its own batching on: MLServer
through KServe v2 JSON tensors, LitServe and Ray Serve through base64 tensors in JSON (BentoML
is not applicable locked down: measure/servers/bentoml.py says why). The shortest windows:
one concurrency level of one second."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker
import pytest

from buildbench.engine.dockersdk import DockerEngine
from buildbench.measure.servers import server
from tests.integration.conftest import Ran, remove_runs, watched
from tests.integration.test_frameworks import check_locked_down, check_served
from tests.unit.test_serving_binary import TINY_FACTORY

pytestmark = pytest.mark.integration

SERVED = {  # cell -> (request, encoding)
    "litserve/cpu": ("POST /predict on port 8000", "JSON, tensors as base64"),
    "mlserver/cpu": ("POST /v2/models/model/infer on port 8080", "KServe v2, JSON values"),
    "rayserve/cpu": ("POST /predict on port 8000", "JSON, tensors as base64"),
}


@pytest.fixture(scope="module")
def served(
    base_image: str,
    engine: DockerEngine,
    client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Ran, dict[str, dict[str, Any]]]]:
    """One run of the servers; every container the run starts inspected while it runs."""
    cwd = tmp_path_factory.mktemp("user")
    (cwd / "tinyfactory.py").write_text(TINY_FACTORY)
    servers = [arg for cell in SERVED for arg in ("--server", cell.split("/")[0])]
    ran, ours = watched(
        client,
        *("run", *servers, "--cuda", "cpu"),
        *("--model", "tinyfactory:make", "--serve-concurrency", "1"),
        *("--serve-seconds", "1", "--no-read-images", "--smoke-timeout", "120"),
        *("--base-image", base_image),
        cwd=cwd,
        timeout=1800,
    )
    yield ran, ours
    remove_runs(engine, cwd / "results")


def test_each_server_is_ready_and_its_answers_are_proven(served: tuple[Ran, Any]) -> None:
    check_served(served[0], SERVED)


def test_each_server_ran_locked_down_writing_only_its_tmpfs(served: tuple[Ran, Any]) -> None:
    ran, seen = served
    cells = ran.cells()
    for name in SERVED:
        wanted = server(name.split("/")[0])
        services = [  # the load generator runs in the service's image too: not it
            c
            for c in seen.values()
            if c["Image"] == cells[name]["image_id"]
            and any(env.startswith("BUILDBENCH_MODEL=") for env in c["Config"]["Env"])
        ]
        assert len(services) == 2, name  # as its image starts it, then its batching on
        for service in services:
            check_locked_down(name, service, set(wanted.tmpfs))
            assert service["HostConfig"]["PidsLimit"] == wanted.pids_limit
