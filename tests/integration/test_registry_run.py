"""`buildbench run --registry local`: every image pushed to Debian's reference registry, its
stored size read from the manifest, pulled back after removal, and (--cold-pull) pulled with
nothing local, its base set aside and put back afterwards."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from buildbench.engine.dockersdk import DockerEngine
from tests.integration.conftest import Ran, buildbench, remove_runs

pytestmark = pytest.mark.integration

TINY = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN head -c 5000000 /dev/urandom > /blob
"""


@pytest.fixture(scope="module")
def own_base(base_image: str, client: docker.DockerClient) -> Iterator[str]:
    """A base image with layers of its own (the default base re-imported), which nothing else
    uses: a cold pull may set it aside."""
    tag = "buildbench-test/cold-base:1"
    container = client.containers.create(base_image, ["true"])
    with subprocess.Popen(["docker", "export", container.id], stdout=subprocess.PIPE) as export:
        subprocess.run(
            ["docker", "import", "--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin", "-", tag],
            stdin=export.stdout,
            check=True,
            capture_output=True,
        )
    container.remove()
    yield tag
    client.images.remove(tag)


@pytest.fixture(scope="module")
def shipped(
    own_base: str, engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Ran, str]]:
    cwd = tmp_path_factory.mktemp("registry")
    (cwd / "tiny.dockerfile").write_text(TINY)
    (cwd / "buildbench.toml").write_text(
        '[[image]]\nname = "tiny"\ndockerfile = "tiny.dockerfile"\nvariants = { cpu = "" }\n'
        f'build_args = {{ BASE_IMAGE = "{own_base}" }}\n'
        'smoke = { command = ["ls", "/blob"], expect = "blob" }\n'
    )
    before = engine.image(own_base)
    assert before is not None
    ran = buildbench("run", "--registry", "local", "--cold-pull", cwd=cwd)
    yield ran, before.id
    remove_runs(engine, cwd / "results")


def test_push_pull_and_the_stored_size_are_recorded(shipped: tuple[Ran, str]):
    ran, _ = shipped
    assert ran.process.returncode == 0, ran.process.stderr[-3000:]
    cell = ran.cells()["tiny/cpu"]
    shipping = cell["registry"]
    assert shipping["registry"].startswith("127.0.0.1:")
    assert shipping["push_seconds"] > 0 and shipping["pull_seconds"] > 0
    # The manifest's layer sizes, as the registry stores them, replace the local estimate.
    assert cell["image"]["compressed_size_bytes"] == shipping["stored_bytes"]
    assert cell["image"]["compressed_size_source"] == "registry"
    assert 5_000_000 < shipping["stored_bytes"] < cell["image"]["size_bytes"]
    options = ran.data()["run"]["options"]
    assert options["registry"] == shipping["registry"]
    assert list(options["base_push_seconds"]) == [cell["build_args"]["BASE_IMAGE"]]


def test_a_cold_pull_brings_the_base_too_and_the_base_comes_back(
    shipped: tuple[Ran, str], engine: DockerEngine, own_base: str
):
    ran, base_id = shipped
    shipping = ran.cells()["tiny/cpu"]["registry"]
    assert shipping["note"] is None, shipping["note"]
    assert shipping["cold_pull_seconds"] > shipping["pull_seconds"]
    restored = engine.image(own_base)
    assert restored is not None and restored.id == base_id
    image = engine.image(ran.cells()["tiny/cpu"]["image_tag"])  # kept, as by default
    assert image is not None and image.id == ran.cells()["tiny/cpu"]["image_id"]


def test_the_report_has_the_shipping_table(shipped: tuple[Ran, str]):
    ran, _ = shipped
    report = (ran.results[0].parent / "report.md").read_text()
    assert "## Shipping through a registry" in report


def test_the_local_registry_is_gone(shipped: tuple[Ran, str]):
    """The run's own registry: nothing answers at its address, and no `docker-registry serve`
    process (another run's or a developer's may be running) serves a config naming it."""
    ran, _ = shipped
    address = ran.cells()["tiny/cpu"]["registry"]["registry"]
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex((host, int(port))) != 0, f"{address} still answers"
    found = subprocess.run(["pgrep", "-f", "docker-registry serve"], capture_output=True, text=True)
    for pid in found.stdout.split():
        with contextlib.suppress(OSError, IndexError):  # gone meanwhile, or another shape
            config = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[2].decode()
            assert json.dumps(address) not in Path(config).read_text(), f"pid {pid} serves it"
