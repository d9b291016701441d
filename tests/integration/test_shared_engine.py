"""Safe on a shared CI engine: concurrent runs keep apart, and nightly runs leave no disk behind,
with either builder. On an engine of this file's own (DOCKER_HOST, as a user points at a remote
engine), whose every object is checked while the other tests run on theirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import (
    OwnEngine,
    buildbench,
    cache_details,
    left_behind,
    objects,
    remove_runs,
    start,
)

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
def tiny(tmp_path: Path, base_image: str) -> Path:
    """A folder whose ./buildbench.toml is a tiny two-stage image, CPU and CUDA variants."""
    (tmp_path / "tiny.dockerfile").write_text(TINY)
    (tmp_path / "buildbench.toml").write_text(
        '[[image]]\nname = "tiny"\ndockerfile = "tiny.dockerfile"\n'
        f'build_args = {{ BASE_IMAGE = "{base_image}" }}\n'
        'smoke = { command = ["cat", "/out/variant"], expect = "cuda=" }\n'
    )
    return tmp_path


def test_two_runs_at_once_keep_their_tags_images_and_results_apart(
    tiny: Path, own_engine: OwnEngine
):
    client = own_engine.client
    processes = [
        start("run", "-q", "--no-read-images", cwd=tiny, env=own_engine.env) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    runs = [json.loads(f.read_text()) for f in sorted(tiny.glob("results/*/results.json"))]
    assert len({r["run"]["run_id"] for r in runs}) == 2
    tags = {cell["image_tag"] for r in runs for cell in r["results"]}
    assert len(tags) == 4  # two runs x cpu/cuda
    for r in runs:
        assert [c["status"] for c in r["results"]] == ["ok", "ok"]
        for cell in r["results"]:
            assert client.api.inspect_image(cell["image_tag"])["Id"] == cell["image_id"]
            assert cell["smoke"]["status"] == "ok"
    remove_runs(own_engine.engine, tiny / "results")


@pytest.mark.parametrize("builder", ["classic", "buildkit"])
def test_twenty_runs_without_keeping_images_leave_the_engine_as_it_was(
    builder: str, tiny: Path, own_engine: OwnEngine
):
    """Images, containers, volumes and BuildKit's cache records: exactly what was there."""
    client = own_engine.client
    before, disk = objects(client), client.df()["LayersSize"]
    for n in range(20):
        ran = buildbench(
            *("run", "-q", "--no-keep-images", "--cuda", "cpu", "--builder", builder),
            cwd=tiny,
            env=own_engine.env,
        )
        assert ran.process.returncode == 0, (n, ran.process.stdout, ran.process.stderr)
    left = left_behind(before, objects(client))
    assert left == {}, cache_details(client, left)
    assert client.df()["LayersSize"] == disk
    cache = client.df().get("BuildCache") or []
    assert sum(record["Size"] for record in cache if record["ID"] not in before["cache"]) == 0
    assert len(list(tiny.glob("results/*/results.json"))) == 20
