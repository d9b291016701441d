"""The HTTP smoke test: `[image.smoke.http]` read from a config (and every bad input refused
before any build), the two containers it asks the engine for, and its verdicts."""

from __future__ import annotations

import io
import json
import logging
import tarfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import requests
from click.testing import CliRunner

from buildbench.analyze.compare import NOT_COMPARABLE, Thresholds, compare, differences
from buildbench.analyze.course import Entry
from buildbench.analyze.derived import FIGURES
from buildbench.analyze.metrics import METRIC_BY_KEY
from buildbench.analyze.served import knee, level_at, level_quantiles, throughput
from buildbench.cli import cli
from buildbench.engine.api import ContainerOutcome, ContainerSpec, ServiceOutcome, VolumeMount
from buildbench.engine.dockersdk import SERVICE_OF, DockerEngine
from buildbench.engine.endpoint import Endpoint
from buildbench.errors import UsageError
from buildbench.measure.smoke.kinds.command.smoke import CommandSmoke
from buildbench.measure.smoke.kinds.http import loadgen
from buildbench.measure.smoke.kinds.http.smoke import HttpSmoke, loadgen_spec, service_user
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.measure.smoke.runner import SmokeContext
from buildbench.record import (
    CellRecord,
    LoadLevel,
    Served,
    SmokeResult,
    from_json,
    make_converter,
    to_json,
)
from buildbench.render.kinds.http import served_charts, served_section
from buildbench.results import load_results
from buildbench.run.config import UserImage, load_config
from buildbench.run.matrix import MatrixOptions
from buildbench.status import Status
from tests.fakes import FakeEngine

IMAGE = '[[image]]\nname = "svc"\ndockerfile = "app/Dockerfile"\n'
FULL = """
[image.smoke.http]
port = 8000
ready = "/health"
method = "post"
path = "/predict"
body_file = "request.json"
headers = { Authorization = "Bearer x" }
expect_status = 201
expect = "embedding"
concurrency = [1, 4, 16]
seconds = 2.5
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (tmp_path / "request.json").write_text('{"text": "hi"}')
    return tmp_path


def _http(folder: Path, text: str) -> HttpSmoke | None:
    path = folder / "buildbench.toml"
    path.write_text(IMAGE + text)
    loaded = load_config(path)
    assert loaded is not None
    (image,) = loaded.images
    assert isinstance(image, UserImage)
    assert image.smoke is None or isinstance(image.smoke, HttpSmoke)
    return image.smoke


def test_every_key_is_read_with_paths_relative_to_the_config(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    http = _http(project, FULL)
    assert http == HttpSmoke(
        port=8000,
        ready="/health",
        method="POST",
        path="/predict",
        body=b'{"text": "hi"}',
        headers={"Authorization": "Bearer x", "Content-Type": "application/json"},
        expect_status=201,
        expect="embedding",
        concurrency=(1, 4, 16),
        seconds=2.5,
    )


def test_the_defaults_and_every_cell_carries_it(project: Path) -> None:
    http = _http(project, "[image.smoke.http]\nport = 9000\n")
    assert http == HttpSmoke(port=9000)
    assert (http.method, http.path, http.ready, http.body, http.expect_status) == (
        "GET",
        "/",
        None,
        None,
        200,
    )
    assert http.concurrency == (1, 4, 16) and http.seconds == 10.0
    path = project / "buildbench.toml"
    loaded = load_config(path)
    assert loaded is not None
    cells = loaded.cells(MatrixOptions())
    assert [cell.smoke for cell in cells] == [http, http]
    assert all(cell.framework is None for cell in cells)


def test_json_is_the_body_with_its_content_type_unless_a_header_names_one(project: Path) -> None:
    http = _http(project, '[image.smoke.http]\nport = 1\njson = { text = "hi", n = [1, 2] }\n')
    assert http is not None and json.loads(http.body or b"") == {"text": "hi", "n": [1, 2]}
    assert http.headers == {"Content-Type": "application/json"}
    own = '[image.smoke.http]\nport = 1\njson = [1]\nheaders = { content-type = "text/x" }\n'
    assert (_http(project, own) or HttpSmoke(0)).headers == {"content-type": "text/x"}


def test_a_body_file_that_is_not_json_gets_no_content_type(project: Path) -> None:
    (project / "image.bin").write_bytes(b"\x00\x01")
    http = _http(project, '[image.smoke.http]\nport = 1\nbody_file = "image.bin"\n')
    assert http is not None and (http.body, http.headers) == (b"\x00\x01", {})


def test_the_error_budget_is_one_percent_unless_the_table_gives_one(project: Path) -> None:
    assert (_http(project, "[image.smoke.http]\nport = 1\n") or HTTP).error_budget == 0.01
    given = _http(project, "[image.smoke.http]\nport = 1\nerror_budget = 0.05\n")
    assert given is not None and given.error_budget == 0.05
    none = _http(project, "[image.smoke.http]\nport = 1\nerror_budget = 0\n")
    assert none is not None and none.error_budget == 0.0


@pytest.mark.parametrize(
    ("text", "warned"),
    [
        ('json = { text = "hi" }', "json gives a body for a GET request"),
        ('body_file = "request.json"\nmethod = "get"', "body_file gives a body for a GET request"),
        ('json = { text = "hi" }\nmethod = "POST"', None),
        ("", None),
    ],
)
def test_a_body_for_a_get_request_is_warned_about_once_when_the_config_is_read(
    project: Path, monkeypatch: pytest.MonkeyPatch, text: str, warned: str | None
) -> None:
    messages: list[str] = []
    kept = logging.Handler(logging.WARNING)
    kept.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("buildbench")
    monkeypatch.setattr(logger, "handlers", [kept])  # the CLI's own handler is stderr
    http = _http(project, f"[image.smoke.http]\nport = 1\n{text}\n")
    assert http is not None
    if warned is None:
        assert messages == []
        return
    (message,) = messages  # once, for both of the image's variants
    path = project / "buildbench.toml"
    assert message.startswith(f"WARNING: {path}: [[image]] #1: smoke.http: {warned}")
    assert message.endswith('set method = "POST" if the service reads it')
    assert http.method == "GET" and http.body  # still sent as configured


def test_the_smoke_command_form_still_works_beside_it(project: Path) -> None:
    path = project / "buildbench.toml"
    path.write_text(IMAGE + 'smoke = { command = ["true"] }\n')
    loaded = load_config(path)
    assert loaded is not None and loaded.images[0].smoke == CommandSmoke(("true",))


BAD = [
    ('port = "8000"', '"port" must be an integer, not a string'),
    ("port = 8000.0", '"port" must be an integer, not a float'),
    ("port = 70000", "port 70000 is not from 1 to 65535"),
    ("ready = '/'", '"port" is required'),
    ('port = 1\nbody_file = "nope.json"', "cannot read body_file"),
    ('port = 1\nbody_file = "request.json"\njson = {}', '"body_file" and "json" both given'),
    ('port = 1\nready = "health"', '"ready" must start with "/"'),
    ('port = 1\npath = "predict"', '"path" must start with "/"'),
    ('port = 1\nmethod = "GET /x"', "is not an HTTP method"),
    ("port = 1\nexpect_status = 42", "expect_status 42 is no HTTP status"),
    ('port = 1\nexpect_status = "200"', '"expect_status" must be an integer'),
    ("port = 1\nconcurrency = []", '"concurrency" must be increasing whole numbers'),
    ("port = 1\nconcurrency = [4, 1]", '"concurrency" must be increasing whole numbers'),
    ("port = 1\nconcurrency = [0]", '"concurrency" must be increasing whole numbers'),
    ("port = 1\nconcurrency = [1, 1000]", '"concurrency" must be increasing whole numbers'),
    ("port = 1\nconcurrency = 4", '"concurrency" must be an array, not an integer'),
    ("port = 1\nseconds = 0", '"seconds" must be a number of seconds'),
    ('port = 1\nseconds = "10"', '"seconds" must be a number of seconds'),
    ("port = 1\nheaders = { X = 1 }", '"headers.X" must be a string'),
    ("port = 1\nexpect = 3", '"expect" must be a string'),
    ("port = 1\ntimeout = 3", 'smoke.http: unknown key "timeout"'),
    ("port = 1\nerror_budget = 1.5", '"error_budget" must be a share from 0 to 1, not 1.5'),
    ("port = 1\nerror_budget = -0.01", '"error_budget" must be a share from 0 to 1'),
    ('port = 1\nerror_budget = "5%"', "\"error_budget\" must be a share from 0 to 1, not '5%'"),
    ("port = 1\nerror_budget = true", '"error_budget" must be a share from 0 to 1, not True'),
    ("port = 1\nerror_budget = nan", '"error_budget" must be a share from 0 to 1, not nan'),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_http_smoke_is_one_usage_error_naming_the_table(
    project: Path, text: str, message: str
) -> None:
    path = project / "buildbench.toml"
    path.write_text(IMAGE + "[image.smoke.http]\n" + text + "\n")
    with pytest.raises(UsageError) as error:
        load_config(path)
    assert error.value.message.startswith(f"{path}: [[image]] #1: smoke.http: ")
    assert message in error.value.message
    assert "\n" not in error.value.message and error.value.tip
    assert error.value.exit_code == 2


def test_http_beside_a_command_is_refused(project: Path) -> None:
    path = project / "buildbench.toml"
    path.write_text(IMAGE + 'smoke = { command = ["true"], http = { port = 1 } }\n')
    with pytest.raises(UsageError, match='"http" takes no "command" or "expect" beside it'):
        load_config(path)


def test_run_refuses_a_missing_request_file_before_any_build(project: Path) -> None:
    path = project / "buildbench.toml"
    path.write_text(IMAGE + '[image.smoke.http]\nport = 8000\nbody_file = "gone.json"\n')
    result = CliRunner().invoke(cli, ["run", "--config", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    first, tip = result.stderr.splitlines()
    assert first.startswith("ERROR: ") and "cannot read body_file" in first
    assert tip == "TIP: paths are relative to the config file's folder"


# ---------------------------------------------------------------------------------------------
# What travels to the load generator, and who the service runs as


def test_the_load_generator_spec_carries_the_request_and_its_bounds() -> None:
    http = HttpSmoke(port=8000, ready="/health", method="POST", body=b"{}", seconds=1.0)
    spec = loadgen_spec(http)
    assert spec["body_file"] == "/buildbench/body" and spec["port"] == 8000
    assert spec["warmup_seconds"] == 0.5 and spec["seconds"] == 1.0
    assert spec["max_requests"] == 1_000_000
    assert loadgen_spec(HttpSmoke(port=1))["body_file"] is None
    assert HttpSmoke(port=1, seconds=100).warmup_seconds == 2.0


@pytest.mark.parametrize(
    ("image_user", "runs_as"),
    [
        ("", "65534:65534"),
        ("root", "65534:65534"),
        ("0", "65534:65534"),
        ("0:0", "65534:65534"),
        ("10001:10001", "10001:10001"),
        ("app", "app"),
    ],
)
def test_a_service_keeps_its_own_user_unless_that_is_root(image_user: str, runs_as: str) -> None:
    assert service_user(image_user) == runs_as


# ---------------------------------------------------------------------------------------------
# The two containers, as the engine is asked for them


class ServeAPI(docker.APIClient):
    """The Docker SDK's API client (it builds the request bodies), its HTTP calls recorded:
    c1 is the service, c2 its client. `wait` on the service lasts until it is removed, or
    returns at once when it `dies`; the client's lasts until it is killed or it `finishes`."""

    def __init__(self, dies: bool = False) -> None:
        super().__init__(base_url="unix:///nonexistent.sock", version="1.41")
        self.dies = dies
        self.created: list[dict[str, Any]] = []
        self.calls: list[tuple[Any, ...]] = []
        self.ended = {"c1": threading.Event(), "c2": threading.Event()}
        if dies:
            self.ended["c1"].set()
        else:
            self.ended["c2"].set()

    def create_container_from_config(
        self, config: dict[str, Any], name: str | None = None, platform: str | None = None
    ) -> dict[str, str]:
        self.created.append(config)
        return {"Id": f"c{len(self.created)}"}

    def put_archive(self, container: str, path: str, data: bytes) -> bool:
        return True

    def start(self, container: str) -> None:
        self.calls.append(("start", container))

    def wait(self, container: str, timeout: int | None = None, **kwargs: Any) -> dict[str, int]:
        self.ended[container].wait(timeout=5)
        return {"StatusCode": 0 if container == "c2" else 3}

    def kill(self, container: str, signal: str | None = None) -> None:
        self.calls.append(("kill", container, signal))
        self.ended[container].set()

    def containers(self, *args: Any, filters: Any = None, **kwargs: Any) -> list[dict[str, str]]:
        return [{"Id": "c2"}] if filters == {"label": f"{SERVICE_OF}=c1"} else []

    def stats(self, container: str, decode: Any = None, stream: bool = True, one_shot: Any = None):
        sample = {
            "memory_stats": {"usage": 300, "max_usage": 700},
            "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000}},
        }
        return iter([sample]) if stream else sample

    def inspect_container(self, container: str) -> dict[str, Any]:
        state = {"Running": not self.dies, "ExitCode": 3 if self.dies else 0, "OOMKilled": False}
        return {"State": {**state, "StartedAt": "2026-11-25T10:00:00.250000000Z"}}

    def logs(self, container: str, stdout: bool = True, stderr: bool = True, **kw: Any) -> bytes:
        return b"INFO: started\nKilled\n" if container == "c1" else b""

    def remove_container(self, container: str, v: bool = False, force: bool = False) -> None:
        self.calls.append(("remove_container", container))
        self.ended[container].set()


def _serving(api: ServeAPI) -> DockerEngine:
    engine = DockerEngine.__new__(DockerEngine)  # connected to nothing: the API is recorded
    engine.api = api
    engine._endpoint = Endpoint("unix:///nonexistent.sock")
    return engine


SERVICE = ContainerSpec(command=[], user="10001:10001", memory_bytes=2**30, labels={"l": "1"})
CLIENT = ContainerSpec(
    command=["python3", "/buildbench/loadgen.py", "/buildbench/spec.json"],
    volumes=(VolumeMount("vol", "/buildbench"),),
    labels={"l": "1"},
)


@pytest.fixture
def no_proxy_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no proxy settings of this machine


@pytest.mark.usefixtures("no_proxy_config")
def test_both_containers_are_locked_down_and_no_port_is_published() -> None:
    api = ServeAPI()
    found = _serving(api).serve("svc:1", SERVICE, "base:1", CLIENT)
    service, client = api.created
    assert service["Image"] == "svc:1"  # its own CMD and ENTRYPOINT, and no port exposed:
    assert service["Cmd"] is None and service["Entrypoint"] is None
    assert service["User"] == "10001:10001" and service["NetworkDisabled"] is True
    assert service["ExposedPorts"] is None
    host = service["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Memory"] == host["MemorySwap"] == 2**30 and host["PidsLimit"] == 256
    assert host["Tmpfs"] == {"/tmp": "size=256m"}
    assert not {"PortBindings", "PublishAllPorts", "Binds", "Privileged", "CapAdd"} & set(host)
    # The client: in the service's network namespace and nothing else, locked down the same.
    assert client["Image"] == "base:1" and client["Cmd"] == CLIENT.command
    assert client["Labels"] == {"l": "1", SERVICE_OF: "c1"}
    assert client["User"] == "65534:65534" and not client.get("NetworkDisabled")
    host = client["HostConfig"]
    assert host["NetworkMode"] == "container:c1"
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Mounts"] == [
        {"Target": "/buildbench", "Source": "vol", "Type": "volume", "ReadOnly": True}
    ]
    assert not {"PortBindings", "PublishAllPorts", "Binds", "Privileged", "CapAdd"} & set(host)
    # Service first, then its client; both removed, the client first.
    assert [c for c in api.calls if c[0] == "start"] == [("start", "c1"), ("start", "c2")]
    removed = [c[1] for c in api.calls if c[0] == "remove_container"]
    assert removed == ["c2", "c1"]
    assert not [c for c in api.calls if c[0] == "kill"]  # the service lived
    assert (found.exit_code, found.peak_memory_bytes, found.cpu_seconds) == (None, 700, 2.5)
    assert found.engine_started_epoch == pytest.approx(1795600800.25)
    assert found.log_tail == ("INFO: started", "Killed") and found.client.exit_code == 0


@pytest.mark.usefixtures("no_proxy_config")
def test_a_service_that_dies_stops_its_client_and_says_how() -> None:
    api = ServeAPI(dies=True)
    found = _serving(api).serve("svc:1", SERVICE, "base:1", CLIENT)
    assert ("kill", "c2", "SIGTERM") in api.calls  # the client reports what it has at once
    assert found.exit_code == 3 and found.log_tail[-1] == "Killed"
    assert {c[1] for c in api.calls if c[0] == "remove_container"} == {"c1", "c2"}


@pytest.mark.usefixtures("no_proxy_config")
def test_a_service_the_engine_refuses_to_start_runs_no_client() -> None:
    class Refusing(ServeAPI):
        def start(self, container: str) -> None:
            response = requests.Response()
            response.status_code = 400
            raise docker.errors.APIError("no command specified", response, "no command specified")

    api = Refusing()
    found = _serving(api).serve("svc:1", SERVICE, "base:1", CLIENT)
    assert found.started is False and found.log_tail == ("no command specified",)
    assert len(api.created) == 1 and api.calls == [("remove_container", "c1")]


# ---------------------------------------------------------------------------------------------
# The kind against the fake engine: its containers and its verdicts

STARTED = 1000.0  # the engine's clock: when the service's process started (the fake's)
HTTP = HttpSmoke(
    port=8000,
    ready="/health",
    method="POST",
    path="/predict",
    body=b'{"x": 1}',
    headers={"Content-Type": "application/json"},
    expect="scores",
    concurrency=(1, 4),
    seconds=1.0,
)


def level(concurrency: int, samples: list[float], **overrides: Any) -> dict[str, Any]:
    errors = {"status": 0, "body": 0, "timeout": 0, "connection": 0}
    found = {
        "concurrency": concurrency,
        "warmup_seconds": 0.5,
        "seconds": 1.0,
        "requests": len(samples),
        "good": len(samples),
        "samples": samples,
        "errors": errors,
        "statuses": {"200": len(samples)},
        "first_bad": None,
        "stopped": False,
        "budget_spent": False,
    }
    return {**found, **overrides}


def loadgen_report(**overrides: Any) -> dict[str, Any]:
    """What the load generator prints for a healthy service."""
    found = {
        "started_epoch": STARTED + 0.5,
        "python": "3.11.2",
        "ready": {"ready": True, "epoch": STARTED + 2.0, "attempts": 30},
        "first_response": {"ok": True, "status": 200, "epoch": STARTED + 2.1, "seconds": 0.1},
        "levels": [level(1, [0.01, 0.012, 0.011]), level(4, [0.02, 0.03, 0.025, 0.04])],
        "stopped": False,
    }
    return {**found, **overrides}


def client_outcome(report: dict[str, Any] | None, **kw: Any) -> ContainerOutcome:
    stdout = "" if report is None else loadgen.RESULT_PREFIX + json.dumps(report) + "\n"
    return ContainerOutcome(kw.pop("exit_code", 0), stdout, kw.pop("stderr", ""), seconds=5.0, **kw)


def _context(engine: FakeEngine, **options: Any) -> SmokeContext:
    return SmokeContext(
        engine=engine,
        image="svc:1",
        options=SmokeOptions(**options),
        labels={"l": "1"},
        gpus=False,
        volume="vol",
    )


def _serve(
    report: dict[str, Any] | None, user: str = "", http: HttpSmoke = HTTP, **service: Any
) -> tuple[SmokeResult, FakeEngine]:
    engine = FakeEngine(run_result=lambda image, spec: client_outcome(report))
    engine.add_image("svc:1", user=user)
    if service:
        engine.service_outcome = replace(engine.service_outcome, **service)
    return http.run(_context(engine, timeout_seconds=60)), engine


def test_a_healthy_service_is_measured_from_its_start_request() -> None:
    result, _ = _serve(loadgen_report())
    assert (result.status, result.message, result.kind) == (Status.OK, "ok", "http")
    served = result.of(Served)
    assert served is not None
    assert served.request == "POST /predict on port 8000"
    # start request (0.05 s, client clock) + engine clock from the process start
    assert served.ready_seconds == pytest.approx(2.05)
    assert served.first_response_seconds == pytest.approx(2.15)
    assert result.cold_start_seconds == [served.first_response_seconds]
    assert [(lv.concurrency, lv.samples) for lv in served.levels] == [
        (1, [0.01, 0.012, 0.011]),
        (4, [0.02, 0.03, 0.025, 0.04]),
    ]
    assert served.levels[0].errors == {"status": 0, "body": 0, "timeout": 0, "connection": 0}
    assert (served.peak_memory_bytes, served.cpu_seconds, served.exit_code) == (
        50_000_000,
        1.5,
        None,
    )
    assert result.python_version == "3.11.2"


def test_the_service_runs_as_its_own_user_and_the_client_in_its_namespace() -> None:
    _, engine = _serve(loadgen_report(), user="10001:10001")
    ((image, service),) = engine.served
    assert image == "svc:1" and service.command == [] and service.user == "10001:10001"
    assert service.network is False and service.read_only and service.labels == {"l": "1"}
    ((client_image, client),) = engine.runs
    assert client_image == "svc:1"  # the load generator runs on the service image's Python
    assert client.network_of == "service1" and client.network is False
    assert client.command[:3] == ["python3", "/buildbench/loadgen.py", "/buildbench/spec.json"]
    assert json.loads(client.command[3]) == {"ready_timeout": 60, "request_timeout": 30.0}
    assert client.volumes == (VolumeMount("vol", "/buildbench", read_only=True),)
    assert client.user == "65534:65534" and client.read_only and client.pids_limit == 4 + 64
    # bounded: the wait for ready, then each level's warm-up, time and a last request
    assert client.timeout_seconds == 60 + 10 + (0.5 + 1.0 + 30 + 5) * 2
    root, _ = _serve(loadgen_report(), user="root")
    assert root.of(Served) is not None and root.of(Served).user == "65534:65534"


def test_the_payload_is_the_load_generator_its_spec_and_the_body() -> None:
    payload = HTTP.payload()
    with tarfile.open(fileobj=io.BytesIO(payload.make())) as tar:
        files = {m.name: (m.mode, tar.extractfile(m).read()) for m in tar}  # type: ignore[union-attr]
    assert set(files) == {"loadgen.py", "spec.json", "body"}
    assert all(mode == 0o644 for mode, _ in files.values())  # readable by the non-root client
    assert files["body"][1] == b'{"x": 1}'
    spec = json.loads(files["spec.json"][1])
    assert spec["path"] == "/predict" and spec["body_file"] == "/buildbench/body"
    assert payload.key == HTTP.payload().key != replace(HTTP, body=b"{}").payload().key


def test_a_service_that_never_becomes_ready_is_a_timeout_with_its_last_lines() -> None:
    never = {"ready": False, "attempts": 900, "last_error": "connection: ConnectionRefusedError"}
    result, _ = _serve(
        loadgen_report(ready=never, levels=[]), log_tail=("INFO: loading", "still loading")
    )
    assert result.status == Status.SMOKE_TIMEOUT
    assert result.message == (
        "not ready within 5 s (GET /health until a 2xx): connection: ConnectionRefusedError"
    )
    assert result.output_tail == ["INFO: loading", "still loading"]
    assert result.of(Served) is not None and result.of(Served).ready_seconds is None


def test_a_service_that_exits_before_it_is_ready_says_so() -> None:
    never = {"ready": False, "attempts": 3, "last_error": "connection: refused"}
    result, _ = _serve(
        loadgen_report(ready=never, levels=[]), exit_code=1, log_tail=("ImportError: fastapi",)
    )
    assert result.status == Status.SMOKE_FAILED
    assert result.message == "the service exited with code 1 before it was ready"
    assert result.output_tail == ["ImportError: fastapi"]


def test_a_wrong_status_names_the_status_and_the_start_of_the_body() -> None:
    first = {"ok": False, "kind": "status", "status": 500, "body_start": "Internal  Server\nError"}
    result, _ = _serve(loadgen_report(first_response=first, levels=[]))
    assert result.status == Status.SMOKE_FAILED
    assert result.message == "POST /predict answered status 500, not 200: 'Internal Server Error'"
    lacking = {"ok": False, "kind": "body", "status": 200, "body_start": '{"label": 3}'}
    result, _ = _serve(loadgen_report(first_response=lacking, levels=[]))
    assert result.message == """POST /predict: the answer lacks 'scores': '{"label": 3}'"""


def test_a_service_that_dies_under_load_is_recorded_with_its_exit_code_and_log() -> None:
    bad = {"kind": "connection", "status": None, "body_start": "ConnectionResetError: [Errno 104]"}
    levels = [level(1, [0.01, 0.02]), level(4, [0.03], first_bad=bad)]
    levels[1]["errors"]["connection"] = 7
    result, _ = _serve(
        loadgen_report(levels=levels, stopped=True),
        exit_code=137,
        oom_killed=True,
        log_tail=("INFO: serving", "Killed"),
    )
    assert result.status == Status.SMOKE_FAILED
    assert result.message == (
        "the service exited with code 137 (killed for memory: raise --smoke-memory) "
        "under load at concurrency 4"
    )
    assert result.output_tail == ["INFO: serving", "Killed"]
    served = result.of(Served)
    assert served is not None and served.exit_code == 137
    assert served.levels[1].errors["connection"] == 7
    assert served.levels[1].first_error == "connection: ConnectionResetError: [Errno 104]"


def test_a_level_without_one_good_answer_fails() -> None:
    levels = [level(1, [0.01]), level(4, [], requests=9, good=0)]
    levels[1]["errors"]["timeout"] = 9
    result, _ = _serve(loadgen_report(levels=levels))
    assert result.status == Status.SMOKE_FAILED
    assert result.message == "no good answer at concurrency 4 (9 timeout)"


def _failing(concurrency: int, good: int, failed: int, kind: str = "status") -> dict[str, Any]:
    """A level whose every request after `good` good ones failed with `kind`."""
    found = level(concurrency, [0.01] * good, requests=good + failed)
    found["errors"][kind] = failed
    return found


def test_a_service_failing_every_second_request_fails_its_error_budget() -> None:
    """23 of 45 good: the level, the count, the share and the budget in one line."""
    levels = [_failing(1, 23, 22), _failing(4, 200, 1)]
    result, _ = _serve(loadgen_report(levels=levels))
    assert result.status == Status.SMOKE_FAILED
    assert result.message == (
        "22 of 45 requests failed at concurrency 1 (48.9%: 22 status), over the error budget of 1%"
    )
    assert "\n" not in result.message
    served = result.of(Served)  # recorded as measured
    assert served is not None and [lv.requests for lv in served.levels] == [45, 201]
    assert served.levels[0].errors["status"] == 22


def test_every_level_past_the_budget_is_named_and_a_configured_budget_is_used() -> None:
    levels = [_failing(1, 97, 3, "timeout"), _failing(4, 90, 10, "connection")]
    result, _ = _serve(loadgen_report(levels=levels))
    assert result.message == (
        "3 of 100 requests failed at concurrency 1 (3.0%: 3 timeout), over the error budget "
        "of 1% (also at concurrency 4)"
    )
    generous, _ = _serve(loadgen_report(levels=levels), http=replace(HTTP, error_budget=0.1))
    assert (generous.status, generous.message) == (Status.OK, "ok")
    strict, _ = _serve(loadgen_report(levels=levels), http=replace(HTTP, error_budget=0.005))
    assert strict.message.endswith("over the error budget of 0.5% (also at concurrency 4)")


def test_failures_within_the_default_budget_pass() -> None:
    result, _ = _serve(loadgen_report(levels=[_failing(1, 99, 1, "body"), _failing(4, 500, 5)]))
    assert (result.status, result.message) == (Status.OK, "ok")


def test_an_image_without_python3_cannot_run_the_load_generator() -> None:
    engine = FakeEngine(
        run_result=lambda image, spec: ContainerOutcome(127, "", 'exec: "python3": not found')
    )
    engine.add_image("svc:1")
    result = HTTP.run(_context(engine))
    assert result.status == Status.SMOKE_FAILED
    assert result.message.endswith("it needs python3 on the image's PATH")
    assert result.message.startswith("the load generator did not run (exit code 127)")


def test_a_load_generator_that_started_and_crashed_says_why_not_python3() -> None:
    crash = "Traceback (most recent call last):\nOSError: [Errno 28] No space left on device"
    engine = FakeEngine(run_result=lambda image, spec: ContainerOutcome(1, "", crash))
    engine.add_image("svc:1")
    result = HTTP.run(_context(engine))
    assert result.status == Status.SMOKE_FAILED
    assert result.message == (
        "the load generator did not run (exit code 1): OSError: [Errno 28] No space left on device"
    )


def test_a_load_generator_killed_at_its_bound_is_a_timeout() -> None:
    engine = FakeEngine(run_result=lambda image, spec: client_outcome(None, timed_out=True))
    engine.add_image("svc:1")
    result = HTTP.run(_context(engine))
    assert result.status == Status.SMOKE_TIMEOUT
    assert result.message == "the load generator gave no result within 5 s"


def test_a_service_the_engine_would_not_start() -> None:
    engine = FakeEngine()
    engine.add_image("svc:1")
    engine.service_outcome = ServiceOutcome(
        ContainerOutcome(None, "", ""), started=False, log_tail=("no command specified",)
    )
    result = HTTP.run(_context(engine))
    assert result.status == Status.SMOKE_FAILED
    assert result.message == "the service did not start: no command specified"
    assert engine.runs == []


def test_served_results_read_back_unchanged() -> None:
    result, _ = _serve(loadgen_report())
    assert from_json(SmokeResult, to_json(result)) == result
    older = to_json(replace(result, kind="model"))
    del older["detail"]  # a result without its kind's detail
    assert from_json(SmokeResult, older).detail is None
    assert from_json(SmokeResult, {**to_json(result), "kind": "unknown"}).detail is None


# ---------------------------------------------------------------------------------------------
# The figures and the report


def _load(concurrency: int, samples: list[float], seconds: float = 1.0, **kw: Any) -> LoadLevel:
    return LoadLevel(concurrency, samples, seconds, 0.5, kw.pop("requests", len(samples)), **kw)


def test_throughput_and_the_knee() -> None:
    fast = [0.010] * 20
    served = Served(
        "POST /predict on port 8000",
        levels=[
            _load(1, fast),
            _load(4, [0.019] * 40),  # p95 within 2x of c=1's
            _load(16, [0.050] * 40),  # past it: saturated
            _load(64, [0.015] * 40),  # within again, but after the knee: does not count
        ],
    )
    assert throughput(served.levels[1]) == 40.0
    assert throughput(_load(1, [], seconds=0.0)) is None
    assert knee(served) == 4
    assert knee(Served("x", levels=[_load(1, fast)])) == 1
    assert knee(Served("x")) is None
    assert level_at(served, 16) is served.levels[2] and level_at(served, 2) is None


def _served_record(name: str = "svc") -> CellRecord:
    result, _ = _serve(loadgen_report())
    record = CellRecord(name, "cpu", None, "d", {}, "h")
    record.smoke = result
    return record


def test_the_served_section_shows_ready_time_quantiles_throughput_and_knee() -> None:
    text = served_section([Entry("vm", _served_record())], merged=False)
    lines = text.splitlines()
    assert lines[0] == "## Served"
    header = "| cell    | smoke   | request                    | ready   | first answer   |"
    assert lines[2].startswith(header)
    assert "| svc/cpu | ok      | POST /predict on port 8000 | 2.0 s   | 2.1 s " in lines[4]
    # c=4's p95 (38 ms) is past 2x c=1's (12 ms): the knee is c=1
    assert lines[4].rstrip().endswith("| 50.00 MB      | 1.5 s | c=1    |")
    c1 = next(line for line in lines if line.startswith("| svc/cpu | 1 "))
    assert "| 11.0 ms [10.0-12.0] |" in c1 and "| 3.0/s " in c1 and "| 3 / 3 " in c1
    assert c1.rstrip().endswith("| none     |")
    assert "Knee: the highest concurrency whose p95 stays within 2x" in text
    assert served_section([], merged=False) == ""


def test_the_report_has_the_section_and_the_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    ((title, suffix, draw),) = served_charts([Entry("vm", _served_record())], merged=False)
    assert (title, suffix) == ("Served: throughput and p95 against concurrency", "served")
    path = draw(tmp_path / "report-served.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert served_charts([], merged=False) == []


def test_results_json_carries_the_served_figures_beside_the_samples() -> None:
    data = make_converter(FIGURES).unstructure(_served_record())
    served = data["smoke"]["detail"]
    assert served["knee"] == 1
    assert served["levels"][0]["throughput"] == 3.0
    assert served["levels"][0]["quantiles"]["p50"] == pytest.approx(0.011)
    assert served["levels"][0]["samples"] == [0.01, 0.012, 0.011]


def test_the_serve_example_measures_both_services_the_same_way() -> None:
    folder = Path(__file__).resolve().parents[2] / "examples" / "serve"
    loaded = load_config(folder / "buildbench.toml")
    assert loaded is not None
    cells = loaded.cells(MatrixOptions(variants=("cpu",)))
    assert [cell.key for cell in cells] == ["serve-onnx/cpu", "serve-pytorch/cpu"]
    onnx, torch = (cell.smoke for cell in cells)
    assert isinstance(onnx, HttpSmoke)
    assert onnx == torch and onnx is not None
    assert onnx.body == (folder / "request.json").read_bytes()
    assert (onnx.port, onnx.ready, onnx.path, onnx.expect) == (
        8000,
        "/health",
        "/predict",
        "scores",
    )
    assert onnx.concurrency == (1, 4, 16)
    assert all(cell.build_inputs and cell.framework is None for cell in cells)


def test_list_shows_the_service_request(project: Path) -> None:
    path = project / "buildbench.toml"
    path.write_text(IMAGE + FULL)
    result = CliRunner().invoke(cli, ["list", "--config", str(path), "--cuda", "cpu"])
    assert result.exit_code == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("svc/cpu")]
    assert row.rstrip().endswith("http: POST /predict on port 8000")


def test_compare_and_history_follow_ready_time_p95_and_throughput() -> None:
    record = _served_record()
    served = record.smoke.of(Served) if record.smoke else None
    assert served is not None
    assert METRIC_BY_KEY["ready_seconds"].value(record) == served.ready_seconds
    p95 = METRIC_BY_KEY["served_p95_c4_seconds"]
    assert p95.value(record) == level_quantiles(served.levels[1]).p95
    per_answer = METRIC_BY_KEY["served_c4_seconds_per_answer"]
    assert per_answer.value(record) == pytest.approx(1 / 4.0)  # 4 good answers in 1 s
    assert METRIC_BY_KEY["served_p95_c16_seconds"].value(record) is None  # not measured


def test_a_service_that_slowed_down_is_a_regression_in_compare() -> None:
    base = load_results(Path(__file__).parent / "data" / "vm.json")
    before, slower = _served_record(), _served_record()
    served = slower.smoke.of(Served) if slower.smoke else None
    assert slower.smoke is not None and served is not None
    levels = [  # three times slower, a third of the answers
        replace(level, samples=[s * 3 for s in level.samples[:1]]) for level in served.levels
    ]
    slower.smoke = replace(slower.smoke, detail=replace(served, levels=levels))
    rows = compare([replace(base, records=[before])], replace(base, records=[slower]), Thresholds())
    found = {row.metric_key: row for row in rows}
    assert found["served_c4_seconds_per_answer"].regressed
    assert found["served_p95_c4_seconds"].regressed
    assert not found["ready_seconds"].regressed  # the same start-up
    assert "served_p95_c16_seconds" not in found  # measured on neither side


def test_served_figures_are_judged_as_smoke_metrics_and_another_request_is_not_comparable() -> None:
    base = load_results(Path(__file__).parent / "data" / "vm.json")
    before, after = _served_record(), _served_record()
    thresholds = Thresholds()
    assert thresholds.default(METRIC_BY_KEY["served_p95_c4_seconds"]) == thresholds.smoke_slowdown
    assert thresholds.default(METRIC_BY_KEY["build_seconds"]) == thresholds.slowdown
    served = after.smoke.of(Served) if after.smoke else None
    assert after.smoke is not None and served is not None
    other = replace(served, request="POST /v2/predict on port 8000")
    after.smoke = replace(after.smoke, detail=other)
    rows = compare([replace(base, records=[before])], replace(base, records=[after]), thresholds)
    found = {row.metric_key: row for row in rows}
    assert found["served_p95_c4_seconds"].mark == NOT_COMPARABLE
    assert found["ready_seconds"].mark == NOT_COMPARABLE
    assert differences(before, after) == ["smoke test"]  # nothing else differs
