"""The heavy serving frameworks a new user asks for: `--server triton --server torchserve`
from a fresh directory builds each one's CPU image once, serves a small model (two inputs,
float32 and int64; two outputs) locked down, and proves the answers against the host's
reference outputs: Triton the ONNX form through KServe v2 binary tensors, TorchServe the
torch form from raw bytes. TorchServe is measured again with its batching on (its frontend's
batchSize and maxBatchDelay, the handler running each batch at once), its answers proven too;
Triton's batching is not applicable to this model, saying why. LitServe, MLServer, BentoML and
Ray Serve: test_frameworks_more.py, with the checks here."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

import docker
import pytest

from buildbench.engine.dockersdk import DockerEngine
from buildbench.measure.servers import server
from tests.integration.conftest import Ran, remove_runs, watched
from tests.unit.test_serving_binary import TINY_FACTORY

pytestmark = pytest.mark.integration

SERVED = {  # cell -> (request, encoding, model file)
    "triton/cpu": (
        "POST /v2/models/model/infer on port 8000",
        "KServe v2, binary tensors",
        "model.onnx",
    ),
    "torchserve/cpu": (
        "POST /predictions/model on port 8080",
        "raw bytes, answered as .npz",
        "model.pt2",
    ),
}


@pytest.fixture(scope="module")
def served(
    base_image: str,
    engine: DockerEngine,
    client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Ran, dict[str, dict[str, Any]]]]:
    """One run of both servers; every container the run starts inspected while it runs."""
    cwd = tmp_path_factory.mktemp("user")
    (cwd / "tinyfactory.py").write_text(TINY_FACTORY)
    ran, ours = watched(
        client,
        *("run", "--server", "triton", "--server", "torchserve", "--cuda", "cpu"),
        *("--model", "tinyfactory:make", "--serve-concurrency", "1,2"),
        *("--serve-seconds", "1", "--no-read-images", "--smoke-timeout", "120"),
        *("--base-image", base_image),
        cwd=cwd,
        timeout=1800,
    )
    yield ran, ours
    remove_runs(engine, cwd / "results")


def test_triton_and_torchserve_serve_the_model_and_their_answers_are_proven(
    served: tuple[Ran, Any],
) -> None:
    ran = served[0]
    check_served(
        ran, {name: (request, encoding) for name, (request, encoding, _) in SERVED.items()}
    )
    # Triton's batching would answer the model's argmax ([batch]) as [batch, 1]: measured once,
    # saying why (the serving table too).
    found = ran.cells()["triton/cpu"]["smoke"]["detail"]
    why = "top is one value a row: triton's batching would answer it"
    assert found["batched"] is None and found["batching"]["enabled"] is False
    assert found["batching"]["unavailable"].startswith(why), found["batching"]
    assert f"| not applicable: {why}" in (ran.results[0].parent / "report.md").read_text()


def test_each_server_ran_locked_down_writing_only_its_tmpfs(served: tuple[Ran, Any]) -> None:
    _, seen = served
    for name, (_, _, model) in SERVED.items():
        env = f"BUILDBENCH_MODEL=/buildbench/model/{model}"
        services = [c for c in seen.values() if env in c["Config"]["Env"]]
        assert len(services) == (2 if name == "torchserve/cpu" else 1)  # off, then on
        for service in services:
            check_locked_down(name, service, {"/tmp"})


def check_served(ran: Ran, served: Mapping[str, tuple[str, str]]) -> None:
    """Every cell of the run (cell -> its request and encoding) ok: ready, answering under load
    without an error, and its answers proven against the host's (the tiny factory's outputs);
    where the server batches, the same again with its batching on, and the serving table's
    word on it."""
    assert ran.process.returncode == 0, ran.process.stderr[-3000:]
    cells = ran.cells()
    assert set(cells) == set(served)
    report = (ran.results[0].parent / "report.md").read_text()
    for name, (request, encoding) in served.items():
        cell = cells[name]
        assert cell["status"] == "ok", (name, cell["error"], cell["smoke"].get("output_tail"))
        found = cell["smoke"]["detail"]
        check_answered(name, found, request, encoding)
        if server(name.split("/")[0]).batching is None or found["batching"]["unavailable"]:
            continue
        on = found["batched"]
        assert found["batching"]["enabled"] is False and on["batching"]["enabled"] is True
        assert (on["batching"]["max_batch"], on["batching"]["max_delay_ms"]) == (8, 5.0)
        check_answered(name, on, request, encoding)
        assert len(on["levels"]) == len(found["levels"])
        assert any(  # its gain, in its row of the serving table
            row.startswith(f"| {name} ") and "| max 8, 5.0 ms: throughput x" in row
            for row in report.splitlines()
        ), name


def check_answered(name: str, found: dict[str, Any], request: str, encoding: str) -> None:
    """One service's run: ready, every level answered without an error, its answer proven."""
    assert found["request"] == request and found["user"] == "10001:10001"
    assert 0 < found["ready_seconds"] <= found["first_response_seconds"] < 120
    for level in found["levels"]:
        assert level["requests"] == len(level["samples"]) > 0
        assert sum(level["errors"].values()) == 0, (name, level)
    answers = found["answers"]
    assert answers["ok"] is True and answers["encoding"] == encoding, (name, answers)
    assert set(answers["outputs"]) == {"scores", "top"}
    assert answers["outputs"]["top"]["exact"] and answers["outputs"]["top"]["count"] == 1


def check_locked_down(name: str, service: dict[str, Any], tmpfs: Collection[str]) -> None:
    """A service container as the engine inspected it: locked down, writing only `tmpfs`."""
    host = service["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True, name
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Memory"] > 0 and host["PidsLimit"] > 0 and set(host["Tmpfs"]) == set(tmpfs)
    assert not host.get("PortBindings") and not host.get("PublishAllPorts")
    assert service["Config"]["User"] == "10001:10001"
    (mount,) = service["Mounts"]
    assert mount["Destination"] == "/buildbench" and mount["RW"] is False
