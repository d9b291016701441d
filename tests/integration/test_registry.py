"""Push, measure and pull real images through Debian's reference registry on 127.0.0.1.

Every image and tag made here has a random name and is removed; the base image is only tagged
under another name (and untagged), never removed, since others share this engine.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import requests

from buildbench.engine.dockersdk import DockerEngine
from buildbench.engine.registry.address import registry_reference
from buildbench.engine.registry.local import LocalRegistry
from buildbench.engine.registry.manifests import (
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    check_registry,
    manifest_size,
)
from buildbench.engine.registry.transfer import pull, push, tag, untag
from buildbench.errors import RegistryError
from tests.integration.conftest import buildbench, remove_runs

pytestmark = pytest.mark.integration

BLOB_BYTES = 5_000_000


@pytest.fixture(scope="module")
def local_registry() -> Iterator[LocalRegistry]:
    with LocalRegistry() as local:
        yield local


@pytest.fixture
def api(client: docker.DockerClient) -> docker.APIClient:
    return client.api


def _build(api: docker.APIClient, dockerfile: str) -> str:
    """Build with the classic builder from a Dockerfile alone; the new image's id."""
    stream = api.build(
        fileobj=io.BytesIO(dockerfile.encode()), rm=True, forcerm=True, nocache=True, decode=True
    )
    image_id, output = None, []
    for event in stream:
        output.append(event.get("stream") or event.get("error") or "")
        image_id = event.get("aux", {}).get("ID", image_id)
    assert image_id, "".join(output)[-2000:]
    return str(image_id)


@pytest.fixture
def small_image(api: docker.APIClient, base_image: str) -> Iterator[str]:
    """The base plus one layer of random bytes (the label keeps it out of any build cache)."""
    label = f"registry-test-{secrets.token_hex(6)}"
    image_id = _build(
        api,
        f"FROM {base_image}\n"
        f"LABEL buildbench.test={label}\n"
        f"RUN head -c {BLOB_BYTES} /dev/urandom > /blob\n",
    )
    try:
        yield image_id
    finally:
        # Forced: a failed test may have left a registry name on it.
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_image(image_id, force=True)


def _registry_manifest(address: str, repository: str, tag_name: str) -> dict[str, Any]:
    """The manifest read without buildbench's code, to check it against."""
    response = requests.get(
        f"http://{address}/v2/{repository}/manifests/{tag_name}",
        headers={"Accept": f"{DOCKER_MANIFEST}, {OCI_MANIFEST}"},
        timeout=10,
    )
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def _blob_length(address: str, repository: str, digest: str) -> int:
    response = requests.head(f"http://{address}/v2/{repository}/blobs/{digest}", timeout=10)
    assert response.status_code == 200, (digest, response.status_code)
    return int(response.headers["Content-Length"])


def _stored_file(storage: Path, digest: str) -> Path:
    """Where distribution's filesystem driver keeps a blob."""
    algorithm, hexdigest = digest.split(":")
    return storage / "docker/registry/v2/blobs" / algorithm / hexdigest[:2] / hexdigest / "data"


def _report(what: str, **numbers: object) -> None:
    # Shown with `pytest -rA` (or -s): the numbers the task asked for.
    print(f"REGISTRY {what}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))


def test_push_size_and_pull_back(
    local_registry: LocalRegistry, api: docker.APIClient, base_image: str, small_image: str
) -> None:
    address = local_registry.address
    check_registry(address)
    repository = f"bbtest-{secrets.token_hex(6)}/small"
    reference = registry_reference(address, repository, "v1")
    tag(api, small_image, reference)
    try:
        lines: list[str] = []
        push_seconds = push(api, reference, lines.append)
        assert push_seconds > 0

        size = manifest_size(address, repository, "v1")
        manifest = _registry_manifest(address, repository, "v1")
        digests = [layer["digest"] for layer in manifest["layers"]]
        local_layers = api.inspect_image(small_image)["RootFS"]["Layers"]
        assert len(size.layers) == len(local_layers) == 2
        # The registry's size is the manifest's sum: each blob is stored at its listed size.
        blob_lengths = [_blob_length(address, repository, d) for d in digests]
        assert size.layers_bytes == sum(blob_lengths)
        assert list(size.layers) == blob_lengths
        assert size.layers_bytes == sum(
            _stored_file(local_registry.storage, d).stat().st_size for d in digests
        )
        config = _blob_length(address, repository, manifest["config"]["digest"])
        assert size.config_bytes == config
        assert size.layers[-1] > BLOB_BYTES  # random bytes do not compress
        assert f"v1: digest: {size.digest} size:" in lines[-1]

        untag(api, reference)  # its only name: the image goes, the base stays
        with pytest.raises(docker.errors.ImageNotFound):
            api.inspect_image(small_image)
        api.inspect_image(base_image)

        lines.clear()
        pull_seconds = pull(api, reference, lines.append)
        assert pull_seconds > 0
        # What the pull time covers: the random layer, but not the base layer the engine holds.
        assert sum(line.endswith("Already exists") for line in lines) == 1, lines
        assert sum(line.endswith("Pull complete") for line in lines) == 1, lines
        assert api.inspect_image(reference)["Id"] == small_image
    finally:
        untag(api, reference)
    _report(
        "small image (base present)",
        push_s=f"{push_seconds:.2f}",
        pull_s=f"{pull_seconds:.2f}",
        layers=size.layers,
        layers_bytes=size.layers_bytes,
        config_bytes=size.config_bytes,
        local_bytes=api.inspect_image(base_image)["Size"] + BLOB_BYTES,
    )


def test_base_image_push_and_pull(api: docker.APIClient, base_image: str) -> None:
    # A registry of its own: no blob of an earlier push can be mounted instead of uploaded.
    base = api.inspect_image(base_image)
    with LocalRegistry() as local:
        repository = f"bbtest-{secrets.token_hex(6)}/base"
        reference = registry_reference(local.address, repository, "v1")
        tag(api, base["Id"], reference)
        try:
            push_seconds = push(api, reference)
            size = manifest_size(local.address, repository, "v1")
            untag(api, reference)  # only the name: the base image keeps its own
            lines: list[str] = []
            pull_seconds = pull(api, reference, lines.append)
            assert api.inspect_image(reference)["Id"] == base["Id"]
        finally:
            untag(api, reference)
    assert api.inspect_image(base_image)["Id"] == base["Id"]
    assert push_seconds > 0
    assert pull_seconds > 0
    # The engine holds this very image: the pull reads the manifest and only names the image.
    assert not any(line.endswith(("Pull complete", "Already exists")) for line in lines), lines
    _report(
        "base image (layers present at pull)",
        push_s=f"{push_seconds:.2f}",
        pull_s=f"{pull_seconds:.2f}",
        layers_bytes=size.layers_bytes,
        local_bytes=base["Size"],
    )


def test_errors_from_the_engine_are_registry_errors(
    local_registry: LocalRegistry, api: docker.APIClient
) -> None:
    missing = registry_reference(local_registry.address, f"bbtest-{secrets.token_hex(6)}/x", "v1")
    with pytest.raises(RegistryError, match=r"push of .* failed"):
        push(api, missing)  # no local image has that name
    with pytest.raises(RegistryError, match="manifest unknown"):
        pull(api, missing)


def _processes_using(path: Path) -> list[int]:
    """Our registry's processes: those whose command line names its private config."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(path) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:  # it ended while we looked
                continue
    return found


def _port_closed(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def _assert_stopped(address: str, pid: int | None, workdir: Path) -> None:
    assert _processes_using(workdir) == []
    assert _port_closed(address)
    assert not workdir.exists()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_nothing_is_left_after_exit() -> None:
    with LocalRegistry() as local:
        address, pid, workdir = local.address, local.pid, local.storage.parent
        check_registry(address)
        assert _processes_using(workdir) == [pid]
    _assert_stopped(address, pid, workdir)


def test_nothing_is_left_after_ctrl_c() -> None:
    local = LocalRegistry()
    with pytest.raises(KeyboardInterrupt), local:
        address, pid, workdir = local.address, local.pid, local.storage.parent
        raise KeyboardInterrupt
    _assert_stopped(address, pid, workdir)


def test_a_read_only_registry_ends_the_run_with_one_error_line(
    engine: DockerEngine, base_image: str, tmp_path: Path
) -> None:
    """The base image is pushed before the first build: the registry's 405 ends the run there,
    as one `ERROR:` line and a tip, without a traceback."""
    (tmp_path / "tiny.dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    (tmp_path / "buildbench.toml").write_text(
        '[[image]]\nname = "tiny"\ndockerfile = "tiny.dockerfile"\nvariants = { cpu = "" }\n'
        f'build_args = {{ BASE_IMAGE = "{base_image}" }}\n'
        'smoke = { command = ["true"], expect = "" }\n'
    )
    with LocalRegistry(read_only=True) as read_only:
        address = read_only.address
        ran = buildbench("run", "--registry", address, cwd=tmp_path, timeout=300)
    try:
        errors = [line for line in ran.process.stderr.splitlines() if line.startswith("ERROR:")]
        assert ran.process.returncode == 6, ran.process.stderr
        assert len(errors) == 1, ran.process.stderr
        assert re.fullmatch(
            rf"ERROR: push of {re.escape(address)}/buildbench/base:\S+ failed: the registry "
            r"answered HTTP 405 Method Not Allowed: it takes no pushes \(read-only\?\)",
            errors[0],
        ), errors
        assert "TIP: check that the registry takes pushes" in ran.process.stderr
        assert "Traceback" not in ran.process.stderr + ran.process.stdout
    finally:
        remove_runs(engine, tmp_path / "results")
