"""The HTTP smoke test: `[image.smoke.http]` read from a config (and every bad input refused
before any build), the two containers it asks the engine for, and its verdicts."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import requests
from click.testing import CliRunner

from buildbench.cli import cli
from buildbench.engine.api import ContainerSpec, VolumeMount
from buildbench.engine.dockersdk import SERVICE_OF, DockerEngine
from buildbench.engine.endpoint import Endpoint
from buildbench.errors import UsageError
from buildbench.measure.smoke.http import HttpSmoke, loadgen_spec, service_user
from buildbench.run.config import UserImage, load_config
from buildbench.run.matrix import MatrixOptions

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
    return image.smoke_http


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
    assert [cell.smoke_http for cell in cells] == [http, http]
    assert all(cell.framework is None and cell.smoke_command is None for cell in cells)


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


def test_the_smoke_command_form_still_works_beside_it(project: Path) -> None:
    assert _http(project, 'smoke = { command = ["true"] }\n') is None


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
    spec = loadgen_spec(http, ready_timeout=60, request_timeout=10, max_requests=500)
    assert spec["body_file"] == "/buildbench/body" and spec["port"] == 8000
    assert spec["warmup_seconds"] == 0.5 and spec["seconds"] == 1.0
    assert (spec["ready_timeout"], spec["request_timeout"], spec["max_requests"]) == (60, 10, 500)
    assert loadgen_spec(HttpSmoke(port=1), 1, 1, 1)["body_file"] is None
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
