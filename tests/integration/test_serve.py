"""Inference images that serve over HTTP, measured as services: a real FastAPI service (from
PyPI in its builder stage) built and measured through the installed console script from a
fresh directory, and three broken ones, each ending in its own status while the next runs."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from buildbench.engine.api import ContainerSpec
from buildbench.engine.dockersdk import DockerEngine
from buildbench.labels import LABEL_RUN
from buildbench.render import fmt
from tests.integration.conftest import Ran, buildbench, remove_runs

pytestmark = [pytest.mark.integration, pytest.mark.alone]  # its SLO sweep needs a quiet machine

# One small service, its behaviour chosen per image by a build-arg: answers (good), answers
# 500 (fails), listens on another port than the config says (deaf), exits 1 s after its first
# answer, half-way into the first level's measured second (dies), answers 500 to every second
# request (half), logs each request as uvicorn does by default and more lines of its own
# (chatty). FastAPI and uvicorn come from PyPI in the builder stage only.
DOCKERFILE = """\
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS builder
ENV PIP_CONFIG_FILE=/build-inputs/pip.conf PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY build-inputs/ /build-inputs/
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install fastapi uvicorn

FROM ${BASE_IMAGE}
ARG MODE=good
COPY --from=builder /opt/venv /opt/venv
COPY app.py /app/
ENV PATH=/opt/venv/bin:${PATH} MODE=${MODE} PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /app
CMD ["python", "app.py"]
"""
APP = """\
import os
import time

import uvicorn
from fastapi import FastAPI, Response

MODE = os.environ["MODE"]
app = FastAPI()
first = None
answered = 0


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/predict")
def predict(body: dict):
    global first, answered
    first = first or time.monotonic()
    answered += 1
    if MODE == "half" and answered % 2 == 0:
        return Response("every second request fails", status_code=500)
    if MODE == "chatty":
        for step in ("tokenised", "inferred", "answered"):
            print(f"request {answered}: {step}", flush=True)
    if MODE == "fails":
        return Response("model not loaded: weights missing", status_code=500)
    if MODE == "dies" and time.monotonic() - first > 1.0:
        print("dying on purpose under load", flush=True)
        os._exit(3)
    return {"embedding": [0.1, 0.2, 0.3], "n": len(body.get("text", ""))}


print(f"starting in mode {MODE}", flush=True)
port = 9000 if MODE == "deaf" else 8000
uvicorn.run(app, host="0.0.0.0", port=port, log_level="info" if MODE == "chatty" else "warning")
"""
SMOKE = """
[image.smoke.http]
port = 8000
ready = "/health"
method = "POST"
path = "/predict"
json = { text = "a small red bicycle" }
expect = "embedding"
concurrency = [1, 4]
seconds = 1
"""
MODES = ("good", "fails", "deaf", "dies")
SLO_MS = 250  # --slo-p95: generous on a busy machine; the sweep starts at half the capacity
# Declared batching (the services have none: what is tested is its way to the report): the
# good service "on", the one that dies after a second "off", a pair measured at concurrency 1.
BATCHING = {
    "good": 'batching = { enabled = true, pair = "svc", max_batch = 4, max_delay_ms = 2 }\n',
    "dies": 'batching = { enabled = false, pair = "svc" }\n',
}


@pytest.fixture(scope="module")
def served(
    base_image: str,
    engine: DockerEngine,
    client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Ran]:
    """The four services in one run, as a user types it, from a fresh directory."""
    cwd = tmp_path_factory.mktemp("service")
    (cwd / "svc").mkdir()
    (cwd / "svc" / "Dockerfile").write_text(DOCKERFILE)
    (cwd / "svc" / "app.py").write_text(APP)
    config = "".join(
        f'[[image]]\nname = "svc-{mode}"\ndockerfile = "svc/Dockerfile"\n'
        f'variants = {{ cpu = "" }}\nbuild_inputs = true\n'
        f'build_args = {{ MODE = "{mode}", BASE_IMAGE = "{base_image}" }}\n{SMOKE}'
        + BATCHING.get(mode, "")
        + "\n"
        for mode in MODES
    )
    (cwd / "buildbench.toml").write_text(config)
    ran = buildbench("run", "--smoke-timeout", "20", "--slo-p95", str(SLO_MS), cwd=cwd, timeout=900)
    assert ran.results, f"no results:\n{ran.process.stdout}\n{ran.process.stderr[-3000:]}"
    # Every service and load generator is gone already (the engine is shared: only this run's
    # objects count), and the run's volumes went with it.
    run_id = ran.data()["run"]["run_id"]
    assert client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run_id}"}) == []
    volumes = client.api.volumes(filters={"label": f"{LABEL_RUN}={run_id}"})["Volumes"]
    assert not volumes
    yield ran
    remove_runs(engine, cwd / "results")


def test_a_fastapi_service_is_measured_as_a_service(served: Ran):
    cell = served.cells()["svc-good/cpu"]
    assert cell["status"] == "ok", cell["error"]
    smoke = cell["smoke"]
    assert smoke["kind"] == "http" and smoke["status"] == "ok"
    found = smoke["detail"]
    assert found["request"] == "POST /predict on port 8000" and found["user"] == "10001:10001"
    assert 0 < found["ready_seconds"] <= found["first_response_seconds"] < 20
    assert smoke["cold_start_seconds"] == [found["first_response_seconds"]]
    assert [level["concurrency"] for level in found["levels"]] == [1, 4]
    for level in found["levels"]:
        assert len(level["samples"]) == level["requests"] > 10
        assert sum(level["errors"].values()) == 0
        assert level["seconds"] == pytest.approx(1.0, abs=0.2)
        assert level["throughput"] > 10 and level["quantiles"]["p95"] > 0
    assert found["peak_memory_bytes"] > 10 * 1024**2 and found["cpu_seconds"] > 0
    assert found["exit_code"] is None and found["knee"] in (1, 4)


def test_the_open_loop_sweep_finds_the_highest_rate_within_the_slo(served: Ran):
    """--slo-p95: after the levels, open-loop steps from half the best closed-loop throughput,
    each sending its scheduled requests (latency from their scheduled times), the rate at the
    SLO the highest step within it; in the report's table and chart."""
    found = served.cells()["svc-good/cpu"]["smoke"]["detail"]
    assert found["slo_p95_seconds"] == SLO_MS / 1000
    best = max(level["throughput"] for level in found["levels"])
    steps = found["rates"]
    assert 2 <= len(steps) <= 8
    assert steps[0]["rate"] == pytest.approx(best / 2, rel=0.01)
    for step in steps:
        assert step["seconds"] == 1.0 and step["warmup_seconds"] == 0.5
        assert abs(step["scheduled"] - step["rate"]) <= 1  # one second's worth
        assert len(step["samples"]) + sum(step["errors"].values()) == step["scheduled"]
        assert step["samples"] and step["quantiles"]["n"] == len(step["samples"])
    assert steps[0]["within_slo"] is True and not all(step["within_slo"] for step in steps)
    within = [step["rate"] for step in steps if step["within_slo"]]
    assert found["rate_at_slo"] == max(within)
    assert all(step["within_slo"] is False for step in steps if step["rate"] > max(within))
    assert served.cells()["svc-fails/cpu"]["smoke"]["detail"]["rates"] == []  # never answered
    run_dir = served.results[0].parent
    report = (run_dir / "report.md").read_text()
    assert f"{fmt.number(found['rate_at_slo'])}/s (p95 <= {SLO_MS} ms)" in report
    assert (run_dir / "report-served-rates.png").is_file()


def test_a_declared_batching_is_recorded_and_set_side_by_side(served: Ran):
    cells = served.cells()
    on = cells["svc-good/cpu"]["smoke"]["detail"]["batching"]
    off = cells["svc-dies/cpu"]["smoke"]["detail"]["batching"]
    assert on == {
        "enabled": True,
        "pair": "svc",
        "max_batch": 4,
        "max_delay_ms": 2.0,
        "unavailable": None,  # a service's own batching: declared, never refused
    }
    assert off == {
        "enabled": False,
        "pair": "svc",
        "max_batch": None,
        "max_delay_ms": None,
        "unavailable": None,
    }
    report = (served.results[0].parent / "report.md").read_text()
    (row,) = [line for line in report.splitlines() if line.startswith("| svc ") and "max 4" in line]
    assert "| max 4, 2.0 ms | 1 " in row  # concurrency 1: the one both measured


def test_a_service_answering_500_fails_naming_the_status_and_body(served: Ran):
    cell = served.cells()["svc-fails/cpu"]
    assert cell["status"] == "smoke_failed"
    assert cell["error"] == (
        "POST /predict answered status 500, not 200: 'model not loaded: weights missing'"
    )
    assert cell["smoke"]["detail"]["levels"] == []


def test_a_service_that_never_listens_is_a_timeout_with_its_last_log_lines(served: Ran):
    cell = served.cells()["svc-deaf/cpu"]
    assert cell["status"] == "smoke_timeout"
    assert cell["error"].startswith("not ready within 2")
    assert "(GET /health until a 2xx): connection: ConnectionRefusedError" in cell["error"]
    assert "starting in mode deaf" in cell["smoke"]["output_tail"]


def test_a_service_that_exits_under_load_is_recorded_with_its_exit_code(served: Ran):
    cell = served.cells()["svc-dies/cpu"]
    assert cell["status"] == "smoke_failed"
    assert cell["error"] == "the service exited with code 3 under load at concurrency 1"
    found = cell["smoke"]["detail"]
    assert found["exit_code"] == 3
    assert "dying on purpose under load" in cell["smoke"]["output_tail"]
    level = found["levels"][0]
    assert level["samples"]  # what it answered before it died is kept
    assert level["seconds"] < 1.0  # the load generator stopped when the service died


def test_the_report_has_the_served_section_and_chart(served: Ran):
    run_dir = served.results[0].parent
    report = (run_dir / "report.md").read_text()
    assert "## Served" in report
    assert re.search(r"^\| svc-good/cpu +\| ok +\| POST /predict on port 8000 ", report, re.M)
    assert (run_dir / "report-served.png").is_file()
    assert served.process.returncode == 1  # failed cells: the run says so in its exit code


def test_a_service_failing_every_second_request_fails_its_error_budget(
    base_image: str, engine: DockerEngine, tmp_path: Path
):
    """One level, one second: about half the requests fail, far past the default 1%: the cell
    fails naming level, count, share and budget, and the run exits 1."""
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "svc" / "app.py").write_text(APP)
    (tmp_path / "buildbench.toml").write_text(
        '[[image]]\nname = "svc-half"\ndockerfile = "svc/Dockerfile"\nvariants = { cpu = "" }\n'
        f'build_inputs = true\nbuild_args = {{ MODE = "half", BASE_IMAGE = "{base_image}" }}\n'
        + SMOKE.replace("concurrency = [1, 4]", "concurrency = [1]")
    )
    ran = buildbench("run", "--smoke-timeout", "20", cwd=tmp_path, timeout=600)
    try:
        assert ran.process.returncode == 1, ran.process.stderr[-3000:]
        assert "failed cells: svc-half/cpu" in ran.process.stderr
        cell = ran.cells()["svc-half/cpu"]
        assert cell["status"] == cell["smoke"]["status"] == "smoke_failed"
        (level,) = cell["smoke"]["detail"]["levels"]
        failed = level["errors"]["status"]
        assert failed >= 10 and abs(len(level["samples"]) - failed) <= 1  # every second one
        assert cell["error"] == (
            f"{failed} of {level['requests']} requests failed at concurrency 1 "
            f"({100 * failed / level['requests']:.1f}%: {failed} status), "
            "over the error budget of 1%"
        )
        report = (ran.results[0].parent / "report.md").read_text()
        assert cell["error"] in report
    finally:
        remove_runs(engine, tmp_path / "results")


HTTP_SERVER = 'FROM {base}\nUSER 10001\nCMD ["python3", "-m", "http.server", "8000"]\n'
CLIENT_PROBE = """\
import os, socket, time, urllib.request
print("interfaces", sorted(os.listdir("/sys/class/net")))
for _ in range(100):
    try:
        print("service", urllib.request.urlopen("http://127.0.0.1:8000/", timeout=2).status)
        break
    except OSError:
        time.sleep(0.1)
try:
    socket.create_connection(("pypi.org", 443), timeout=3)
    print("outside reachable")
except OSError as exc:
    print("outside unreachable", type(exc).__name__)
time.sleep(3)  # long enough for the test to look at both containers
"""


def test_the_engine_runs_both_containers_locked_down_with_no_port(
    engine: DockerEngine, client: docker.DockerClient, base_image: str
):
    """On the real engine: the service (the image's own CMD) has no network, a read-only root,
    no capabilities and no port bindings; its client shares its namespace and sees only lo."""
    tag = "buildbench-test/http-server:serve"
    client.images.build(
        fileobj=io.BytesIO(HTTP_SERVER.format(base=base_image).encode()),
        tag=tag,
        rm=True,
        labels={"buildbench.test": "serve"},
    )
    labels = {"buildbench.test": "serve-lockdown"}
    seen: dict[str, dict] = {}

    def look() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(seen) < 2:
            for found in client.api.containers(filters={"label": "buildbench.test=serve-lockdown"}):
                seen[found["Id"]] = client.api.inspect_container(found["Id"])
            time.sleep(0.2)

    watcher = threading.Thread(target=look, daemon=True)
    watcher.start()
    try:
        outcome = engine.serve(
            tag,
            ContainerSpec(command=[], user="10001", memory_bytes=256 * 1024**2, labels=labels),
            tag,
            ContainerSpec(command=["python3", "-c", CLIENT_PROBE], labels=labels),
        )
    finally:
        watcher.join(timeout=30)
        client.images.remove(tag)
    out = outcome.client.stdout
    assert "interfaces ['lo']" in out and "service 200" in out, outcome.client.stderr
    assert "outside unreachable" in out
    assert outcome.exit_code is None and outcome.peak_memory_bytes
    service = next(c for c in seen.values() if c["Config"]["Cmd"][:2] == ["python3", "-m"])
    helper = next(c for c in seen.values() if c is not service)
    host = service["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert not host.get("PortBindings") and not host.get("PublishAllPorts")
    assert service["Config"]["User"] == "10001" and not service["NetworkSettings"]["Ports"]
    assert helper["HostConfig"]["NetworkMode"] == f"container:{service['Id']}"
    assert helper["HostConfig"]["ReadonlyRootfs"] is True
    assert helper["HostConfig"]["CapDrop"] == ["ALL"]
    assert (
        client.api.containers(all=True, filters={"label": "buildbench.test=serve-lockdown"}) == []
    )
