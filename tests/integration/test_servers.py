"""`--server` as a new user runs it: the installed console script in a fresh directory builds
the baseline server's CPU image once (FastAPI + ONNX Runtime), serves a small model from it
locked down, and proves its answers against the host's reference outputs; the report has the
serving table. The other servers, their encodings and their batching off and on:
test_frameworks.py and test_frameworks_more.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker
import pytest

from buildbench.engine.dockersdk import DockerEngine
from tests.integration.conftest import Ran, remove_runs, watched
from tests.unit.test_modelspec import tiny_onnx

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(
    base_image: str,
    engine: DockerEngine,
    client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Ran, dict[str, dict[str, Any]]]]:
    """One run, the model two inputs (int64, float32) and two outputs (float32, bool); every
    container the run starts inspected while it runs."""
    cwd = tmp_path_factory.mktemp("user")
    tiny_onnx(cwd / "tiny.onnx")
    ran, ours = watched(
        client,
        *("run", "--server", "fastapi", "--cuda", "cpu"),
        *("--model", "tiny.onnx"),
        *("--serve-concurrency", "1,2", "--serve-seconds", "1", "--no-read-images"),
        *("--smoke-timeout", "60", "--base-image", base_image),
        cwd=cwd,
        timeout=1200,
    )
    yield ran, ours
    remove_runs(engine, cwd / "results")


@pytest.mark.parametrize("name", ["fastapi"])
def test_a_server_serves_the_model_and_its_answers_are_proven(
    served: tuple[Ran, Any], name: str
) -> None:
    ran, _ = served
    cells = ran.cells()
    assert set(cells) == {"fastapi/cpu"}
    cell = cells[f"{name}/cpu"]
    assert cell["status"] == "ok", cell["error"]
    assert cell["dockerfile"].endswith(f"serve-{name}.dockerfile")
    smoke = cell["smoke"]
    assert smoke["kind"] == "http" and smoke["status"] == "ok"
    found = smoke["detail"]
    assert found["request"] == "POST /predict on port 8000" and found["user"] == "10001:10001"
    assert 0 < found["ready_seconds"] <= found["first_response_seconds"] < 60
    assert [level["concurrency"] for level in found["levels"]] == [1, 2]
    for level in found["levels"]:
        assert level["requests"] == len(level["samples"]) > 10
        assert sum(level["errors"].values()) == 0
    answers = found["answers"]
    assert answers["server"] == name and answers["ok"] is True
    assert answers["encoding"] == "JSON, tensors as base64" and answers["request_bytes"] > 0
    assert set(answers["outputs"]) == {"y", "mask"}
    assert answers["outputs"]["mask"]["exact"] and answers["outputs"]["mask"]["count"] == 4
    assert all(p["ok"] for p in answers["outputs"].values())
    # FastAPI does not batch: measured once, the serving table saying why.
    assert found["batched"] is None and found["batching"]["enabled"] is False
    assert found["batching"]["unavailable"].startswith("FastAPI has no server-side batching")
    report = (ran.results[0].parent / "report.md").read_text()
    assert "## Serving frameworks" in report
    assert "| not applicable: FastAPI has no server-side batching" in report
    assert f"| {name}/cpu " in report and "ok, 2 outputs, max abs diff" in report
    assert ran.process.returncode == 0, ran.process.stderr[-3000:]


def test_each_server_and_its_load_generator_ran_locked_down(served: tuple[Ran, Any]) -> None:
    _, seen = served
    # The model's file keeps the name it was first cached under (the cache is by content).
    model = "BUILDBENCH_MODEL=/buildbench/model/"
    services = [c for c in seen.values() if any(e.startswith(model) for e in c["Config"]["Env"])]
    assert len(services) == 1  # one per server
    for service in services:
        client = next(
            c
            for c in seen.values()
            if c["HostConfig"]["NetworkMode"] == f"container:{service['Id']}"
        )
        host = service["HostConfig"]
        assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Memory"] > 0 and host["PidsLimit"] > 0 and set(host["Tmpfs"]) == {"/tmp"}
        assert not host.get("PortBindings") and not host.get("PublishAllPorts")
        assert service["Config"]["User"] == "10001:10001"
        (mount,) = service["Mounts"]
        assert mount["Destination"] == "/buildbench" and mount["RW"] is False
        assert client["HostConfig"]["ReadonlyRootfs"] is True
        assert client["HostConfig"]["CapDrop"] == ["ALL"]
