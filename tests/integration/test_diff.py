"""`buildbench diff` and `compare` on real changes: one more pip package, a bumped version and
a changed base image, each named with its bytes and versions, through the installed console
script.

Two `buildbench run`s of one small config (a pip install of `six`, then of a newer `six` and
`idna`, from PyPI through the proxy the base image trusts) keep their images; a base with one
more layer and the first Dockerfile on it are built directly. All of it once per module, removed
afterwards (the runs' with `buildbench clean`'s code, the others with their step images).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from buildbench.engine.dockersdk import DockerEngine
from tests.integration.conftest import buildbench, remove_runs

pytestmark = pytest.mark.integration

LABELS = {"buildbench.test": "diff"}
BASE_FILE = 2_000_000  # what the changed base image adds: one file of random bytes
CONFIG = '[[image]]\nname = "app"\ndockerfile = "app.dockerfile"\nvariants = { cpu = "" }\n'
NEW_STEP = "step 2 `RUN pip install --no-cache-dir six==1.17.0 idna==3.7`"


def dockerfile(base: str, *packages: str) -> str:
    return f"FROM {base}\nRUN pip install --no-cache-dir {' '.join(packages)}\n"


@dataclass(frozen=True)
class Made:
    folder: Path  # where the runs ran: results/ holds both
    runs: tuple[str, str]  # the two run folders, oldest first
    images: dict[str, str]  # old, new (the runs' image tags), rebased


@pytest.fixture(scope="module")
def made(
    engine: DockerEngine,
    client: docker.DockerClient,
    base_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Made]:
    folder = tmp_path_factory.mktemp("runs")
    (folder / "buildbench.toml").write_text(CONFIG)
    tags = {
        name: f"buildbench-test/diff-{name}:{uuid.uuid4().hex[:10]}" for name in ("base", "rebased")
    }
    built: list[str] = []

    def build(name: str, text: str) -> None:
        context = tmp_path_factory.mktemp(name)
        (context / "Dockerfile").write_text(text)
        image, _ = client.images.build(
            path=str(context), tag=tags[name], rm=True, forcerm=True, pull=False, labels=LABELS
        )
        built.append(image.attrs["Id"])

    try:
        runs = []
        for packages in (("six==1.16.0",), ("six==1.17.0", "idna==3.7")):
            (folder / "app.dockerfile").write_text(dockerfile(base_image, *packages))
            ran = buildbench("run", "--repeat", "1", "--no-smoke", cwd=folder)
            assert ran.process.returncode == 0, ran.process.stderr
            runs.append(ran)
        build("base", f"FROM {base_image}\nRUN head -c {BASE_FILE} /dev/urandom > /opt/base.bin\n")
        build("rebased", dockerfile(tags["base"], "six==1.16.0"))
        folders = tuple(str(path.parent) for path in runs[-1].results)
        old, new = (ran.cells(index)["app/cpu"]["image_tag"] for index, ran in enumerate(runs))
        yield Made(
            folder, (folders[0], folders[1]), {"old": old, "new": new, "rebased": tags["rebased"]}
        )
    finally:
        remove_runs(engine, folder / "results")
        for image_id in reversed(built):
            with contextlib.suppress(docker.errors.APIError):  # gone with the one above it
                client.images.remove(image_id, force=True, noprune=False)


def test_one_more_package_and_a_bumped_version(made: Made, tmp_path: Path):
    # The newer is larger by idna's bytes at least: more than --fail-over 100000 allows.
    old, new = made.images["old"], made.images["new"]
    ran = buildbench("diff", old, new, "--fail-over", "100000", cwd=tmp_path)
    assert ran.process.returncode == 1, ran.process.stderr
    out = ran.process.stdout
    cause = next(line for line in out.splitlines() if line.startswith("largest cause: "))
    assert "idna 3.7 added by layer `RUN pip install --no-cache-dir six==1.17.0 idna==3.7`" in cause
    assert "upgraded  six" in out and "1.16.0  1.17.0" in out
    assert "/idna/idnadata.py" in out  # the files too
    document = json.loads(
        buildbench("diff", old, new, "--format", "json", cwd=tmp_path).process.stdout
    )
    found = document["diffs"][0]
    by_name = {d["name"]: d for d in found["distributions"]}
    assert by_name["idna"]["change"] == "added" and by_name["idna"]["new_version"] == "3.7"
    assert by_name["idna"]["delta_bytes"] > 300_000  # idna's files, as its RECORD lists them
    assert (by_name["six"]["old_version"], by_name["six"]["new_version"]) == ("1.16.0", "1.17.0")
    assert sum(p["delta_bytes"] for p in found["parts"]) == found["delta_bytes"] > 0


def test_a_changed_base_image(made: Made, tmp_path: Path):
    ran = buildbench(
        "diff", made.images["old"], made.images["rebased"], "--format", "csv", cwd=tmp_path
    )
    assert ran.process.returncode == 0, ran.process.stderr
    lines = ran.process.stdout.splitlines()
    # The base's new layer and file, with their bytes; six is the same on both sides.
    base_layer = next(line for line in lines if ",layer,RUN head -c" in line)
    assert f",added,,,0,{BASE_FILE},{BASE_FILE}," in base_layer
    assert any(
        line.startswith(
            f"{made.images['old']} -> {made.images['rebased']},file,/opt/base.bin,added"
        )
        for line in lines
    )
    assert not any(",distribution,six," in line for line in lines)


def test_an_image_the_engine_lacks(made: Made, tmp_path: Path):
    ran = buildbench("diff", made.images["old"], "buildbench-test/diff-none:nope", cwd=tmp_path)
    assert ran.process.returncode == 2
    assert ran.process.stderr.startswith("ERROR: the engine has no image")
    assert "Traceback" not in ran.process.stderr and ran.process.stdout == ""


def test_compare_of_two_runs_explains_the_size_by_package_and_step(made: Made):
    """The Dockerfile's pip line changed between the runs: compare calls the cell not
    comparable and says why its size moved, and what changed."""
    compared = buildbench("compare", *made.runs, cwd=made.folder)
    assert compared.process.returncode == 0, compared.process.stderr  # not comparable: no verdict
    lines = compared.process.stdout.splitlines()
    size = next(line for line in lines if line.startswith("x app/cpu image size"))
    assert f": idna 3.7 added by {NEW_STEP} (not comparable: Dockerfile changed)" in size
    assert "six 1.16.0 -> 1.17.0" in lines[lines.index(size) + 2]
    assert "      +RUN pip install --no-cache-dir six==1.17.0 idna==3.7" in lines
    # diff of the two results files names the same, with bytes.
    ran = buildbench("diff", *made.runs, "--format", "json", cwd=made.folder)
    idna = next(
        d
        for d in json.loads(ran.process.stdout)["diffs"][0]["distributions"]
        if d["name"] == "idna"
    )
    assert (idna["change"], idna["new_version"], idna["step"]) == ("added", "3.7", 2)
    assert idna["delta_bytes"] > 300_000
