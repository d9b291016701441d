"""Ctrl-C and SIGTERM mid-build, in each kind of step: the cell is recorded as interrupted, the
results and report are kept, and the engine holds nothing more than before: no image (untagged
step images included), container, volume or build cache record."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import left_behind, objects, start, wait_for_lines

pytestmark = [pytest.mark.integration, pytest.mark.alone]  # see scripts/test


COPYING = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS builder
RUN echo first > /first
COPY big/ /big/
RUN echo never
FROM ${BASE_IMAGE}
COPY --from=builder /first /first
"""


def _copying_config(folder: Path, base_image: str) -> Path:
    (folder / "big").mkdir()
    with (folder / "big" / "blob").open("wb") as blob:  # a COPY that takes a while
        for _ in range(600):
            blob.write(bytes(1024 * 1024))
    (folder / "copying.dockerfile").write_text(COPYING)
    config = folder / "buildbench.toml"
    config.write_text(
        '[[image]]\nname = "copying"\ndockerfile = "copying.dockerfile"\n'
        f'variants = {{ cpu = "" }}\nbuild_args = {{ BASE_IMAGE = "{base_image}" }}\n'
    )
    return config


CASES = {
    # the step to interrupt: (extra options, the line that says it is running)
    "copy": ([], [": COPY big/ /big/"]),
    "run-downloading": (["--framework", "onnx", "--cuda", "cpu", "-v"], ["Downloading"]),
    "run-installing": (["--framework", "onnx", "--cuda", "cpu", "-v"], ["Installing collected"]),
}


@pytest.mark.parametrize(
    ("case", "sig", "code", "builder"),
    [
        ("copy", signal.SIGINT, 130, "classic"),
        ("run-downloading", signal.SIGINT, 130, "classic"),
        ("run-installing", signal.SIGINT, 130, "classic"),
        ("run-downloading", signal.SIGTERM, 143, "classic"),
        ("run-installing", signal.SIGINT, 130, "buildkit"),
    ],
)
def test_an_interrupted_build_leaves_nothing_behind(
    case, sig, code, builder, base_image: str, client: docker.DockerClient, tmp_path: Path
):
    options, needles = CASES[case]
    if case == "copy":
        _copying_config(tmp_path, base_image)  # ./buildbench.toml: found by default
    before = objects(client)
    process = start("run", "--builder", builder, *options, cwd=tmp_path)
    wait_for_lines(process, needles)
    time.sleep(1)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == code, stderr[-3000:]
    assert "interrupted" in stdout  # the summary of what was measured
    results = next(tmp_path.glob("results/*/results.json"))
    assert '"status": "interrupted"' in results.read_text()
    assert (results.parent / "report.md").is_file()
    for _ in range(60):  # the engine removes a cancelled build's container on its own time
        if not left_behind(before, objects(client)):
            break
        time.sleep(1)
    assert left_behind(before, objects(client)) == {}
