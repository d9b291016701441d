"""Safe on a shared CI engine: concurrent runs keep apart, and nightly runs leave no disk behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import remove_run

pytestmark = pytest.mark.integration

TINY = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS builder
ARG CUDA=
RUN mkdir /out && echo "cuda=${CUDA}" > /out/variant && head -c 1000000 /dev/urandom > /out/blob
FROM ${BASE_IMAGE}
COPY --from=builder /out /out
"""


@pytest.fixture
def tiny_config(tmp_path: Path, base_image: str) -> Path:
    (tmp_path / "tiny.dockerfile").write_text(TINY)
    config = tmp_path / "buildbench.toml"
    config.write_text(
        '[[image]]\nname = "tiny"\ndockerfile = "tiny.dockerfile"\n'
        f'build_args = {{ BASE_IMAGE = "{base_image}" }}\n'
        'smoke = { command = ["cat", "/out/variant"], expect = "cuda=" }\n'
    )
    return config


def _run(config: Path, results: Path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "buildbench",
        "run",
        "--config",
        str(config),
        "-q",
        "--no-compressed-size",
        "--results-dir",
        str(results),
        *extra,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_runs_at_once_keep_their_tags_images_and_results_apart(
    tiny_config: Path, tmp_path: Path, client: docker.DockerClient
):
    processes = [_run(tiny_config, tmp_path / "results") for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    files = sorted((tmp_path / "results").glob("*/results.json"))
    runs = [json.loads(f.read_text()) for f in files]
    assert len({r["run"]["run_id"] for r in runs}) == 2
    tags = {cell["image_tag"] for r in runs for cell in r["results"]}
    assert len(tags) == 4  # two runs x cpu/cuda
    for r in runs:
        assert [c["status"] for c in r["results"]] == ["ok", "ok"]
        for cell in r["results"]:
            assert client.api.inspect_image(cell["image_tag"])["Id"] == cell["image_id"]
            assert cell["smoke"]["status"] == "ok"
        remove_run(client, r["run"]["run_id"])


def _disk(client: docker.DockerClient) -> tuple[int, int]:
    usage = client.df()
    return usage["LayersSize"], len(client.images.list(all=True))


def test_twenty_runs_without_keeping_images_leave_the_disk_as_it_was(
    tiny_config: Path, tmp_path: Path, client: docker.DockerClient
):
    before = _disk(client)
    for n in range(20):
        process = _run(tiny_config, tmp_path / "results", "--no-keep-images", "--cuda", "cpu")
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, (n, out, err)
    assert _disk(client) == before
    assert len(list((tmp_path / "results").glob("*/results.json"))) == 20
