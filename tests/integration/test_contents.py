"""Contents analysis of real images, built on the real engine and read back with `docker save`.

Each image is built once per module, with a unique tag and the `buildbench.test` label, and
removed afterwards with the classic builder's untagged step images.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import re
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest
from docker.models.images import Image

from buildbench.measure.archive import ArchiveAnalysis, analyse_archive
from buildbench.measure.contents import image_contents
from buildbench.record import FindingKind, ImageContents
from tests.integration.conftest import BASE_IMAGE

pytestmark = pytest.mark.integration

LABELS = {"buildbench.test": "contents"}
STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12})$", re.MULTILINE)

BIG_FILE = 50_000_000
WASTE_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
RUN head -c {BIG_FILE} /dev/urandom > /big
RUN rm /big
"""
TOOLCHAIN_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends build-essential
"""
WHEEL = "bbtool-1.0-py3-none-any.whl"
WHEEL_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1
COPY {WHEEL} /tmp/
RUN pip install --no-index --no-cache-dir /tmp/{WHEEL} && rm /tmp/{WHEEL}
"""


@dataclass(frozen=True)
class Built:
    tag: str
    analysis: ArchiveAnalysis
    contents: ImageContents
    bytes_over_base: int


@pytest.fixture(scope="module")
def base(client: docker.DockerClient, base_image: str) -> Image:
    return client.images.get(base_image)


def build(
    client: docker.DockerClient,
    base: Image,
    tmp_path: Path,
    dockerfile: str,
    files: dict[str, bytes] | None = None,
) -> Iterator[Built]:
    """Build, analyse, yield; then remove the image and the step images below it."""
    (tmp_path / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        (tmp_path / name).write_bytes(data)
    tag = f"buildbench-test/contents:{uuid.uuid4().hex[:12]}"
    try:
        image, _ = client.images.build(
            path=str(tmp_path),
            tag=tag,
            rm=True,
            forcerm=True,
            nocache=True,
            pull=False,
            labels=LABELS,
        )
    except docker.errors.BuildError as error:
        _remove_steps(client, base, error.build_log)
        raise
    try:
        yield _analyse(client, base, image, tag)
    finally:
        # noprune=False: the untagged step images of the classic builder go too.
        client.images.remove(image.attrs["Id"], force=True, noprune=False)


def _analyse(client: docker.DockerClient, base: Image, image: Image, tag: str) -> Built:
    base_layers = base.attrs["RootFS"]["Layers"]
    assert image.attrs["RootFS"]["Layers"][: len(base_layers)] == base_layers
    analysis = analyse_archive(
        client.api.get_image(tag, chunk_size=1024 * 1024), base_layers=len(base_layers)
    )
    over_base = image.attrs["Size"] - base.attrs["Size"]
    return Built(tag, analysis, image_contents(analysis, bytes_over_base=over_base), over_base)


def _remove_steps(client: docker.DockerClient, base: Image, log: Iterator[dict[str, str]]) -> None:
    """A failed classic build leaves the images of the steps that passed: remove ours."""
    text = "".join(str(line.get("stream", "")) for line in log)
    for short_id in reversed(STEP_IMAGE.findall(text)):
        if base.attrs["Id"].removeprefix("sha256:").startswith(short_id):
            continue
        # An image may be gone already, pruned with the one above it.
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(short_id, noprune=False)


def run_in(client: docker.DockerClient, tag: str, *command: str) -> str:
    output = client.containers.run(
        tag, list(command), remove=True, network_disabled=True, labels=LABELS
    )
    return bytes(output).decode()


def wheel() -> bytes:
    """A small wheel with a console script (RECORD lists it as ../../../bin/bbtool)."""
    files = {
        "bbtool/__init__.py": b"def main():\n    print('bbtool')\n",
        "bbtool/data.bin": os.urandom(300_000),
        "bbtool-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: bbtool\nVersion: 1.0\n",
        "bbtool-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        "bbtool-1.0.dist-info/entry_points.txt": b"[console_scripts]\nbbtool = bbtool:main\n",
    }
    rows = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    files["bbtool-1.0.dist-info/RECORD"] = "\n".join(
        [*rows, "bbtool-1.0.dist-info/RECORD,,"]
    ).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def waste(client, base, tmp_path_factory) -> Iterator[Built]:
    yield from build(client, base, tmp_path_factory.mktemp("waste"), WASTE_DOCKERFILE)


@pytest.fixture(scope="module")
def toolchain(client, base, tmp_path_factory) -> Iterator[Built]:
    yield from build(client, base, tmp_path_factory.mktemp("toolchain"), TOOLCHAIN_DOCKERFILE)


@pytest.fixture(scope="module")
def wheel_image(client, base, tmp_path_factory) -> Iterator[Built]:
    context = tmp_path_factory.mktemp("wheel")
    yield from build(client, base, context, WHEEL_DOCKERFILE, {WHEEL: wheel()})


# ---------------------------------------------------------------------------------------------


def test_a_file_written_then_removed_is_wasted_by_the_run_that_wrote_it(waste):
    deleted = [f for f in waste.contents.findings if f.kind is FindingKind.DELETED_LATER]
    [finding] = deleted
    assert finding.bytes == BIG_FILE
    assert finding.paths == ["/big"]
    assert finding.instruction == f"RUN head -c {BIG_FILE} /dev/urandom > /big"
    assert waste.contents.wasted_bytes == BIG_FILE
    assert 0 < waste.contents.efficiency < 1
    # The base is a runtime image: gcc-12-base (libgcc-s1 needs it) is no toolchain.
    assert FindingKind.TOOLCHAIN not in {f.kind for f in waste.contents.findings}


def test_build_essential_is_a_toolchain_finding_sized_as_dpkg_sizes_it(client, toolchain):
    [finding] = [f for f in toolchain.contents.findings if f.kind is FindingKind.TOOLCHAIN]
    assert {"build-essential", "gcc", "g++", "make", "libc6-dev", "dpkg-dev"} <= set(
        finding.packages
    )
    assert "libc6" not in finding.packages  # everything needs it
    sizes = run_in(
        client, toolchain.tag, "dpkg-query", "-W", "-f", "${Installed-Size}\n", *finding.packages
    )
    installed = 1024 * sum(int(line) for line in sizes.split())
    assert abs(finding.bytes - installed) <= 0.05 * installed, (finding.bytes, installed)
    assert finding.instruction is not None and "build-essential" in finding.instruction


def test_apt_lists_left_by_apt_get_update_are_a_finding(client, toolchain):
    [finding] = [f for f in toolchain.contents.findings if f.kind is FindingKind.APT_LISTS]
    on_disk = run_in(
        client,
        toolchain.tag,
        "sh",
        "-c",
        "find /var/lib/apt/lists -type f | xargs stat -c %s | awk '{s+=$1} END {print s}'",
    )
    assert finding.bytes == int(on_disk)
    assert all(path.startswith("/var/lib/apt/lists/") for path in finding.paths)


def test_packages_installed_over_the_base_are_attributed(toolchain):
    packages = {p.name: p for p in toolchain.contents.attribution.packages}
    assert packages["gcc-12"].new
    assert packages["gcc-12"].bytes > 10_000_000


def test_a_wheel_is_attributed_as_its_record_lists_it(client, wheel_image):
    [share] = [d for d in wheel_image.contents.attribution.distributions if d.name == "bbtool"]
    assert share.version == "1.0"
    # What the installed files weigh, measured inside the image from pip's own RECORD.
    probe = (
        "import importlib.metadata as m, os\n"
        "d = m.distribution('bbtool')\n"
        "paths = {os.path.realpath(d.locate_file(f)) for f in d.files}\n"
        "print(sum(os.lstat(p).st_size for p in paths if os.path.lexists(p)))\n"
    )
    assert share.bytes == int(run_in(client, wheel_image.tag, "python3", "-c", probe))
    findings = {f.kind: f for f in wheel_image.contents.findings}
    copied = findings[FindingKind.DELETED_LATER]
    assert copied.paths == [f"/tmp/{WHEEL}"]
    assert copied.instruction is not None and copied.instruction.startswith("COPY ")
    assert findings[FindingKind.BYTECODE].bytes > 0  # pip compiles whatever the env says


@pytest.mark.parametrize("name", ["waste", "toolchain", "wheel_image"])
def test_attribution_sums_to_the_bytes_over_the_base(name, request):
    built: Built = request.getfixturevalue(name)
    attribution = built.contents.attribution
    total = attribution.distributions_bytes + attribution.packages_bytes + attribution.other_bytes
    assert total == attribution.bytes_over_base == built.bytes_over_base
    # The layers' sizes, read from their tars, are the engine's own figures.
    assert attribution.layers_bytes == built.bytes_over_base
    assert attribution.unowned_bytes >= 0
