"""`buildbench diff` on real images: one more pip package, a bumped version and a changed base
image, each named with its bytes and versions, through the installed console script.

The images are small (a pip install of `six` and `idna` from PyPI, through the proxy the base
image trusts) and built once per module with the `buildbench.test` label, then removed with the
classic builder's step images.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.integration.conftest import buildbench

pytestmark = pytest.mark.integration

LABELS = {"buildbench.test": "diff"}
BASE_FILE = 2_000_000  # what the changed base image adds: one file of random bytes


def dockerfile(base: str, *packages: str) -> str:
    return f"FROM {base}\nRUN pip install --no-cache-dir {' '.join(packages)}\n"


@pytest.fixture(scope="module")
def images(
    client: docker.DockerClient, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """old: six 1.16.0; new: six 1.17.0 and idna 3.7; rebased: old's Dockerfile on a base
    with one more layer."""
    run = uuid.uuid4().hex[:10]
    tags = {
        name: f"buildbench-test/diff-{name}:{run}" for name in ("base", "old", "new", "rebased")
    }
    made: list[str] = []

    def build(name: str, text: str) -> None:
        folder = tmp_path_factory.mktemp(name)
        (folder / "Dockerfile").write_text(text)
        image, _ = client.images.build(
            path=str(folder), tag=tags[name], rm=True, forcerm=True, pull=False, labels=LABELS
        )
        made.append(image.attrs["Id"])

    try:
        build("old", dockerfile(base_image, "six==1.16.0"))
        build("new", dockerfile(base_image, "six==1.17.0", "idna==3.7"))
        base = f"FROM {base_image}\nRUN head -c {BASE_FILE} /dev/urandom > /opt/base.bin\n"
        build("base", base)
        build("rebased", dockerfile(tags["base"], "six==1.16.0"))
        yield tags
    finally:
        for image_id in reversed(made):
            with contextlib.suppress(docker.errors.APIError):  # gone with the one above it
                client.images.remove(image_id, force=True, noprune=False)


def test_one_more_package_and_a_bumped_version(images: dict[str, str], tmp_path: Path):
    ran = buildbench("diff", images["old"], images["new"], cwd=tmp_path)
    assert ran.process.returncode == 0, ran.process.stderr
    out = ran.process.stdout
    cause = next(line for line in out.splitlines() if line.startswith("largest cause: "))
    assert "idna 3.7 added by layer `RUN pip install --no-cache-dir six==1.17.0 idna==3.7`" in cause
    assert "upgraded  six" in out and "1.16.0  1.17.0" in out
    assert "/idna/idnadata.py" in out  # the files too
    document = json.loads(
        buildbench(
            "diff", images["old"], images["new"], "--format", "json", cwd=tmp_path
        ).process.stdout
    )
    found = document["diffs"][0]
    by_name = {d["name"]: d for d in found["distributions"]}
    assert by_name["idna"]["change"] == "added" and by_name["idna"]["new_version"] == "3.7"
    assert by_name["idna"]["delta_bytes"] > 300_000  # idna's files, as its RECORD lists them
    assert (by_name["six"]["old_version"], by_name["six"]["new_version"]) == ("1.16.0", "1.17.0")
    assert sum(p["delta_bytes"] for p in found["parts"]) == found["delta_bytes"] > 0
    # The newer is larger by idna's bytes at least: more than --fail-over 100000 allows.
    failed = buildbench("diff", images["old"], images["new"], "--fail-over", "100000", cwd=tmp_path)
    assert failed.process.returncode == 1


def test_a_changed_base_image(images: dict[str, str], tmp_path: Path):
    ran = buildbench("diff", images["old"], images["rebased"], "--format", "csv", cwd=tmp_path)
    assert ran.process.returncode == 0, ran.process.stderr
    lines = ran.process.stdout.splitlines()
    # The base's new layer and file, with their bytes; six is the same on both sides.
    base_layer = next(line for line in lines if ",layer,RUN head -c" in line)
    assert f",added,,,0,{BASE_FILE},{BASE_FILE}," in base_layer
    assert any(
        line.startswith(f"{images['old']} -> {images['rebased']},file,/opt/base.bin,added")
        for line in lines
    )
    assert not any(",distribution,six," in line for line in lines)


def test_an_image_the_engine_lacks(images: dict[str, str], tmp_path: Path):
    ran = buildbench("diff", images["old"], "buildbench-test/diff-none:nope", cwd=tmp_path)
    assert ran.process.returncode == 2
    assert ran.process.stderr.startswith("ERROR: the engine has no image")
    assert "Traceback" not in ran.process.stderr and ran.process.stdout == ""
