"""buildbench.engine.registry (its four modules) without an engine or a real registry.

Manifests come from a tiny HTTP server on 127.0.0.1; push and pull streams from a fake
APIClient; `LocalRegistry`'s process handling is tried on a fake `docker-registry` script.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import docker
import docker.errors
import pytest
import requests
from click.testing import CliRunner

import buildbench.run.engines
from buildbench.cli import cli
from buildbench.engine.registry import manifests, transfer
from buildbench.engine.registry.address import parse_address, registry_reference
from buildbench.engine.registry.local import LocalRegistry, free_port, registry_config
from buildbench.engine.registry.manifests import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    ManifestSize,
)
from buildbench.errors import BuildbenchError, EngineUnavailable, RegistryError, UsageError

# --- addresses, references, config -----------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["127.0.0.1:5000", "localhost", "localhost:5000", "registry.lan", "[::1]:5000"]
)
def test_parse_address_accepts_registry_hosts(text: str) -> None:
    assert parse_address(f" {text} ") == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("http://127.0.0.1:5000", "scheme"),
        ("127.0.0.1:5000/v2", "is not HOST"),
        ("", "is not HOST"),
        ("myhost", "Docker Hub"),  # the engine would push to docker.io/myhost/...
    ],
)
def test_parse_address_rejects_what_the_engine_would_misread(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why) as caught:
        parse_address(text)
    assert caught.value.tip


def test_registry_reference() -> None:
    reference = registry_reference("127.0.0.1:5000", "buildbench/onnx", "cpu-RUN1")
    assert reference == "127.0.0.1:5000/buildbench/onnx:cpu-RUN1"


def test_loopback_registries_are_tried_over_http_first() -> None:
    assert manifests._schemes("127.0.0.1:5000") == ("http", "https")
    assert manifests._schemes("localhost:5000") == ("http", "https")
    assert manifests._schemes("[::1]:5000") == ("http", "https")
    assert manifests._schemes("registry.lan:5000") == ("https", "http")


def test_registry_config_listens_on_loopback_only(tmp_path: Path) -> None:
    text = registry_config(5123, tmp_path / "a b", "s3cret", "mark")
    lines = text.splitlines()
    assert lines[0] == "version: 0.1"
    assert '  addr: "127.0.0.1:5123"' in lines
    assert f"    rootdirectory: {json.dumps(str(tmp_path / 'a b'))}" in lines
    assert '  secret: "s3cret"' in lines
    assert '    X-Buildbench-Registry: ["mark"]' in lines
    assert "    enabled: true" in lines  # storage.delete
    assert "    disabled: true" in lines  # no access log


# --- manifests from a tiny HTTP server -------------------------------------------------------

Route = tuple[int, dict[str, str], bytes]


@dataclass
class FakeRegistry:
    """Answers GET PATH (query left off) from `routes`; 404 otherwise. Records what it got."""

    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    address: str = ""

    def json(self, path: str, document: Any, media_type: str = "", digest: str = "") -> bytes:
        body = json.dumps(document).encode()
        headers = {"Content-Type": media_type} if media_type else {}
        if digest:
            headers["Docker-Content-Digest"] = digest
        self.routes[path] = (200, headers, body)
        return body


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()
    fake.routes["/v2/"] = (200, {}, b"{}")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            fake.requests.append((self.path, dict(self.headers.items())))
            status, headers, body = fake.routes.get(path, (404, {}, b'{"errors": []}'))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits for one, and every test stops a server.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    fake.address = f"127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _image_manifest(
    media_type: str | None, layers: list[int], config: int = 1234
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config},
        "layers": [{"size": size, "digest": f"sha256:{i:064x}"} for i, size in enumerate(layers)],
    }
    if media_type:
        document["mediaType"] = media_type
    return document


def test_manifest_size_of_a_docker_schema2_manifest(fake_registry: FakeRegistry) -> None:
    fake_registry.json(
        "/v2/bb/onnx/manifests/cpu",
        _image_manifest(DOCKER_MANIFEST, [100, 20, 3]),
        DOCKER_MANIFEST,
        digest="sha256:abc",
    )
    size = manifests.manifest_size(fake_registry.address, "bb/onnx", "cpu")
    assert size == ManifestSize("sha256:abc", 123, 1234, (100, 20, 3), DOCKER_MANIFEST)
    accept = fake_registry.requests[-1][1]["Accept"]
    for media_type in (DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_LIST, OCI_INDEX):
        assert media_type in accept


def test_an_oci_manifest_without_media_type_or_digest_header(fake_registry: FakeRegistry) -> None:
    # OCI makes mediaType optional: the Content-Type says it; the digest is that of the bytes.
    body = fake_registry.json(
        "/v2/bb/onnx/manifests/cpu",
        _image_manifest(None, [7, 8], config=9),
        OCI_MANIFEST + "; charset=utf-8",
    )
    size = manifests.manifest_size(fake_registry.address, "bb/onnx", "cpu")
    assert size.media_type == OCI_MANIFEST
    assert size.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert (size.layers_bytes, size.config_bytes, size.layers) == (15, 9, (7, 8))


def _index_entry(digest: str, os_name: str, arch: str, **extra: Any) -> dict[str, Any]:
    return {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": 500,
        "platform": {"os": os_name, "architecture": arch, **extra},
    }


def test_a_manifest_list_is_followed_to_linux_amd64(fake_registry: FakeRegistry) -> None:
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            _index_entry("sha256:arm", "linux", "arm64", variant="v8"),
            _index_entry("sha256:amd", "linux", "amd64"),
            _index_entry("sha256:att", "unknown", "unknown"),  # a BuildKit attestation
        ],
    }
    fake_registry.json("/v2/bb/torch/manifests/cpu", index, OCI_INDEX, digest="sha256:index")
    fake_registry.json("/v2/bb/torch/manifests/sha256:amd", _image_manifest(OCI_MANIFEST, [5]))
    fake_registry.routes["/v2/bb/torch/manifests/sha256:amd"][1]["Docker-Content-Digest"] = (
        "sha256:amd"
    )
    size = manifests.manifest_size(fake_registry.address, "bb/torch", "cpu")
    assert (size.digest, size.layers_bytes, size.media_type) == ("sha256:amd", 5, OCI_MANIFEST)

    fake_registry.json("/v2/bb/torch/manifests/sha256:arm", _image_manifest(OCI_MANIFEST, [6]))
    arm = manifests.manifest_size(fake_registry.address, "bb/torch", "cpu", "linux/arm64/v8")
    assert arm.layers == (6,)


def test_a_list_with_one_image_is_followed_whatever_its_platform(
    fake_registry: FakeRegistry,
) -> None:
    index = {"mediaType": DOCKER_LIST, "manifests": [_index_entry("sha256:one", "linux", "s390x")]}
    fake_registry.json("/v2/bb/x/manifests/t", index, DOCKER_LIST)
    fake_registry.json("/v2/bb/x/manifests/sha256:one", _image_manifest(DOCKER_MANIFEST, [1, 2]))
    assert manifests.manifest_size(fake_registry.address, "bb/x", "t").layers == (1, 2)


def test_a_list_without_the_platform_is_an_error(fake_registry: FakeRegistry) -> None:
    index = {
        "mediaType": OCI_INDEX,
        "manifests": [
            _index_entry("sha256:a", "linux", "arm64"),
            _index_entry("sha256:b", "linux", "ppc64le"),
        ],
    }
    fake_registry.json("/v2/bb/x/manifests/t", index)
    with pytest.raises(RegistryError, match=r"no linux/amd64 image .*linux/arm64"):
        manifests.manifest_size(fake_registry.address, "bb/x", "t")


@pytest.mark.parametrize(
    ("document", "media_type", "message"),
    [
        (
            {"schemaVersion": 1, "fsLayers": []},
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "not an image",
        ),
        ({"mediaType": DOCKER_MANIFEST, "layers": [{"size": 1}]}, "", "malformed"),
        ({"mediaType": DOCKER_MANIFEST, "config": {"size": 1}, "layers": [{}]}, "", "malformed"),
    ],
)
def test_manifests_buildbench_cannot_read(
    fake_registry: FakeRegistry, document: dict[str, Any], media_type: str, message: str
) -> None:
    fake_registry.json("/v2/bb/x/manifests/t", document, media_type)
    with pytest.raises(RegistryError, match=message):
        manifests.manifest_size(fake_registry.address, "bb/x", "t")


def test_a_missing_tag_is_an_error_with_the_status(fake_registry: FakeRegistry) -> None:
    with pytest.raises(RegistryError, match="HTTP 404"):
        manifests.manifest_size(fake_registry.address, "bb/x", "nope")


def test_a_bearer_challenge_is_answered_with_a_token(
    fake_registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifests, "_credentials", lambda registry_host: None)  # anonymous
    path = "/v2/bb/x/manifests/t"
    challenge = f'Bearer realm="http://{fake_registry.address}/token",service="reg",scope="x"'
    fake_registry.routes[path] = (401, {"WWW-Authenticate": challenge}, b"{}")
    fake_registry.json("/token", {"token": "T0K"})
    seen: list[str] = []

    original = requests.Session.get

    def get(session: requests.Session, url: str, **kwargs: Any) -> requests.Response:
        # Once the token is fetched, the manifest answers to whoever brings it.
        if "Authorization" in (kwargs.get("headers") or {}):
            seen.append(kwargs["headers"]["Authorization"])
            fake_registry.json(path, _image_manifest(DOCKER_MANIFEST, [4]), DOCKER_MANIFEST)
        return original(session, url, **kwargs)

    monkeypatch.setattr(requests.Session, "get", get)
    assert manifests.manifest_size(fake_registry.address, "bb/x", "t").layers == (4,)
    assert seen == ["Bearer T0K"]
    token_request = next(p for p, _ in fake_registry.requests if p.startswith("/token"))
    assert "service=reg" in token_request
    assert "scope=repository%3Abb%2Fx%3Apull" in token_request


def test_a_basic_challenge_without_a_login_says_so(
    fake_registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifests, "_credentials", lambda registry_host: None)
    fake_registry.routes["/v2/bb/x/manifests/t"] = (
        401,
        {"WWW-Authenticate": 'Basic realm="r"'},
        b"{}",
    )
    with pytest.raises(RegistryError, match="docker login"):
        manifests.manifest_size(fake_registry.address, "bb/x", "t")


def test_check_registry_accepts_200_and_401(fake_registry: FakeRegistry) -> None:
    manifests.check_registry(fake_registry.address)
    fake_registry.routes["/v2/"] = (401, {"WWW-Authenticate": 'Basic realm="r"'}, b"{}")
    manifests.check_registry(fake_registry.address)


def test_check_registry_refuses_what_is_not_a_registry(fake_registry: FakeRegistry) -> None:
    del fake_registry.routes["/v2/"]
    with pytest.raises(UsageError, match=r"does not answer .*http: HTTP 404") as caught:
        manifests.check_registry(fake_registry.address)
    assert "--registry local" in (caught.value.tip or "")


def test_check_registry_on_a_closed_port() -> None:
    port = free_port()
    with pytest.raises(UsageError, match=f"registry 127.0.0.1:{port} does not answer"):
        manifests.check_registry(f"127.0.0.1:{port}")


# --- push and pull streams -------------------------------------------------------------------


@dataclass
class FakeAPI:
    """The few APIClient methods registry.py calls, answering scripted streams."""

    stream: list[Any] = field(default_factory=list)
    raises: Exception | None = None
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    read_to_end: bool = False
    tag_result: bool = True

    def _answer(self, name: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
        self.calls.append((name, args, kwargs))
        if self.raises is not None:
            raise self.raises
        return self._events()

    def _events(self) -> Iterator[Any]:
        yield from self.stream
        self.read_to_end = True

    def push(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self._answer("push", *args, **kwargs)

    def pull(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self._answer("pull", *args, **kwargs)

    def tag(self, *args: Any, **kwargs: Any) -> bool:
        self.calls.append(("tag", args, kwargs))
        if self.raises is not None:
            raise self.raises
        return self.tag_result

    def remove_image(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("remove_image", args, kwargs))
        if self.raises is not None:
            raise self.raises


def _api(fake: FakeAPI) -> docker.APIClient:
    return cast(docker.APIClient, fake)


PUSHED = [
    {"status": "The push refers to repository [127.0.0.1:5000/bb/onnx]"},
    {"status": "Preparing", "progressDetail": {}, "id": "e99f5951146e"},
    {
        "status": "Pushing",
        "progressDetail": {"current": 512, "total": 1024},
        "progress": "[=====>     ]  512B/1kB",
        "id": "e99f5951146e",
    },
    {"status": "Pushed", "progressDetail": {}, "id": "e99f5951146e"},
    {"status": "cpu: digest: sha256:46702f size: 528"},
    {"progressDetail": {}, "aux": {"Tag": "cpu", "Digest": "sha256:46702f", "Size": 528}},
]
PULLED = [
    {"status": "Pulling from bb/onnx", "id": "cpu"},
    {"status": "Already exists", "progressDetail": {}, "id": "e99f5951146e"},
    {"status": "Pull complete", "progressDetail": {}, "id": "0123456789ab"},
    {"status": "Digest: sha256:46702f"},
    {"status": "Status: Downloaded newer image for 127.0.0.1:5000/bb/onnx:cpu"},
]


def test_push_times_the_stream_and_shows_progress() -> None:
    fake = FakeAPI(PUSHED)
    lines: list[str] = []
    seconds = transfer.push(_api(fake), "127.0.0.1:5000/bb/onnx:cpu", lines.append)
    assert seconds >= 0
    assert fake.read_to_end
    assert fake.calls == [
        ("push", ("127.0.0.1:5000/bb/onnx",), {"tag": "cpu", "stream": True, "decode": True})
    ]
    assert lines[1] == "e99f5951146e: Preparing"
    assert lines[2] == "e99f5951146e: Pushing [=====>     ]  512B/1kB"
    assert lines[-1] == "cpu: digest: sha256:46702f size: 528"


def test_push_names_the_tag_so_the_engine_never_pushes_them_all() -> None:
    fake = FakeAPI(PUSHED)
    transfer.push(_api(fake), "127.0.0.1:5000/bb/onnx")
    assert fake.calls[0][2]["tag"] == "latest"


ERROR_LINE = {
    "errorDetail": {"message": "blob upload unknown"},
    "error": "blob upload unknown",
}


def test_an_error_line_fails_the_push_after_reading_the_stream_to_its_end() -> None:
    fake = FakeAPI([*PUSHED[:3], ERROR_LINE, {"status": "late line"}])
    with pytest.raises(RegistryError, match=r"push of .*:cpu failed: blob upload unknown"):
        transfer.push(_api(fake), "127.0.0.1:5000/bb/onnx:cpu")
    assert fake.read_to_end


def test_an_error_detail_alone_is_enough() -> None:
    fake = FakeAPI([*PULLED[:2], {"errorDetail": {"message": "no space left on device"}}])
    with pytest.raises(RegistryError, match=r"pull of .* failed: no space left on device"):
        transfer.pull(_api(fake), "127.0.0.1:5000/bb/onnx:cpu")


def test_a_push_stream_cut_before_the_digest_is_no_measurement() -> None:
    fake = FakeAPI(PUSHED[:4])
    with pytest.raises(RegistryError, match="without the registry's digest"):
        transfer.push(_api(fake), "127.0.0.1:5000/bb/onnx:cpu")


def test_pull_times_the_stream_and_shows_progress() -> None:
    fake = FakeAPI(PULLED)
    lines: list[str] = []
    assert transfer.pull(_api(fake), "127.0.0.1:5000/bb/onnx:cpu", lines.append) >= 0
    assert fake.calls[0][1] == ("127.0.0.1:5000/bb/onnx:cpu",)
    assert lines[0] == "cpu: Pulling from bb/onnx"
    assert lines[-1].startswith("Status: Downloaded newer image")


def test_a_pull_stream_cut_before_its_status_is_no_measurement() -> None:
    with pytest.raises(RegistryError, match="ended before the engine said it was done"):
        transfer.pull(_api(FakeAPI(PULLED[:3])), "127.0.0.1:5000/bb/onnx:cpu")


def _api_error(message: str) -> docker.errors.APIError:
    return docker.errors.APIError("500 Server Error", explanation=message)


@pytest.mark.parametrize("action", [transfer.push, transfer.pull])
def test_an_engine_refusal_is_a_registry_error(action: Any) -> None:
    fake = FakeAPI(raises=_api_error("An image does not exist locally with the tag"))
    with pytest.raises(RegistryError, match="does not exist locally"):
        action(_api(fake), "127.0.0.1:5000/bb/onnx:cpu")


@pytest.mark.parametrize("action", [transfer.push, transfer.pull])
def test_an_engine_that_goes_away_is_engine_unavailable(action: Any) -> None:
    fake = FakeAPI(raises=requests.exceptions.ChunkedEncodingError("connection broken"))
    with pytest.raises(EngineUnavailable, match="stopped answering during the"):
        action(_api(fake), "127.0.0.1:5000/bb/onnx:cpu")


def test_tag_and_untag() -> None:
    fake = FakeAPI()
    transfer.tag(_api(fake), "sha256:1d", "127.0.0.1:5000/bb/onnx:cpu")
    transfer.untag(_api(fake), "127.0.0.1:5000/bb/onnx:cpu")
    assert fake.calls == [
        ("tag", ("sha256:1d", "127.0.0.1:5000/bb/onnx"), {"tag": "cpu"}),
        ("remove_image", ("127.0.0.1:5000/bb/onnx:cpu",), {}),
    ]
    with pytest.raises(RegistryError, match="did not tag"):
        transfer.tag(_api(FakeAPI(tag_result=False)), "sha256:1d", "127.0.0.1:5000/bb/x:y")


def test_untag_of_a_name_that_is_gone_is_no_error() -> None:
    transfer.untag(_api(FakeAPI(raises=docker.errors.NotFound("gone"))), "127.0.0.1:5000/x:y")
    with pytest.raises(RegistryError, match=r"removing .* failed: conflict"):
        transfer.untag(_api(FakeAPI(raises=_api_error("conflict"))), "127.0.0.1:5000/x:y")


# --- LocalRegistry on a fake binary ----------------------------------------------------------

FAKE_BINARY = """\
import json, os, re, signal, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

config = open(sys.argv[2]).read()
host, port = json.loads(re.search(r"addr: (.*)", config).group(1)).rsplit(":", 1)
marker = json.loads(re.search(r"X-Buildbench-Registry: \\[(.*)\\]", config).group(1))
mode = os.environ["FAKE_REGISTRY_MODE"]
print("fake registry", sys.argv[1:], file=sys.stderr, flush=True)
if mode == "busy-once":
    counter = os.path.join(os.path.dirname(sys.argv[0]), "attempts")
    attempts = int(open(counter).read()) if os.path.exists(counter) else 0
    open(counter, "w").write(str(attempts + 1))
    if attempts == 0:
        sys.exit("level=fatal msg=\\"listen tcp: bind: address already in use\\"")
if mode == "die":
    sys.exit("level=fatal msg=\\"no storage driver\\"")
if mode == "silent":
    time.sleep(60)
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        if mode != "stranger":
            self.send_header("X-Buildbench-Registry", marker)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


HTTPServer((host, int(port)), Handler).serve_forever()
"""


@pytest.fixture
def fake_binary(tmp_path: Path) -> str:
    path = tmp_path / "docker-registry"
    path.write_text(f"#!{sys.executable}\n{FAKE_BINARY}")
    path.chmod(0o755)
    return str(path)


def _is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _port_closed(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def test_a_missing_binary_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError, match=r"`docker-registry` .* is not installed") as caught:
        LocalRegistry().__enter__()
    assert caught.value.tip is not None
    assert "apt-get install docker-registry" in caught.value.tip


def test_start_and_stop(fake_binary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_REGISTRY_MODE", "serve")
    monkeypatch.setenv("REGISTRY_HTTP_ADDR", "0.0.0.0:5000")  # must not reach the registry
    with LocalRegistry(fake_binary) as local:
        pid, address, storage = local.pid, local.address, local.storage
        assert address.startswith("127.0.0.1:")
        manifests.check_registry(address)
        workdir = storage.parent
        assert "REGISTRY_HTTP_ADDR" not in Path(f"/proc/{pid}/environ").read_text()
    assert pid is not None
    assert _is_gone(pid)
    assert _port_closed(address)
    assert not workdir.exists()
    with pytest.raises(RuntimeError, match="not running"):
        local.address  # noqa: B018


def test_keyboard_interrupt_leaves_nothing_behind(
    fake_binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_REGISTRY_MODE", "serve")
    local = LocalRegistry(fake_binary)
    with pytest.raises(KeyboardInterrupt), local:
        pid, workdir = local.pid, local.storage.parent
        raise KeyboardInterrupt
    assert pid is not None
    assert _is_gone(pid)
    assert not workdir.exists()


def test_a_registry_that_ignores_sigterm_is_killed(
    fake_binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_REGISTRY_MODE", "ignore-term")
    with LocalRegistry(fake_binary, grace=0.3) as local:
        pid = local.pid
    assert pid is not None
    assert _is_gone(pid)


def test_a_registry_that_dies_at_start_shows_its_log(
    fake_binary: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_REGISTRY_MODE", "die")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(
        RegistryError, match=r"(?s)exited with status 1 at start: .*no storage driver"
    ):
        LocalRegistry(fake_binary).__enter__()
    assert not list(tmp_path.glob("buildbench-registry-*"))


@pytest.mark.parametrize("mode", ["silent", "stranger"])
def test_a_registry_that_does_not_answer_times_out_with_its_log(
    fake_binary: str, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # "stranger": something answers on the port, but not our registry (no marker header).
    monkeypatch.setenv("FAKE_REGISTRY_MODE", mode)
    # 2 s: the fake (a Python program) must have started and written its log by then.
    with pytest.raises(RegistryError, match=r"did not answer .* within 2 s; .*fake registry"):
        LocalRegistry(fake_binary, start_timeout=2.0).__enter__()


def test_a_lost_race_for_the_port_is_tried_again(
    fake_binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_REGISTRY_MODE", "busy-once")
    with LocalRegistry(fake_binary) as local:
        manifests.check_registry(local.address)
    assert (Path(fake_binary).parent / "attempts").read_text() == "2"


# The engine's words for a push to a read-only registry (distribution 2.8, Engine 20.10).
READ_ONLY_REFUSAL = (
    "error parsing HTTP 405 response body: invalid character 'M' looking for beginning of "
    'value: "Method not allowed\\n"'
)


def test_a_read_only_registry_refusing_a_push_is_one_error_line_and_a_tip() -> None:
    fake = FakeAPI([*PUSHED[:2], {"errorDetail": {"message": READ_ONLY_REFUSAL}}])
    with pytest.raises(BuildbenchError) as caught:
        transfer.push(_api(fake), "127.0.0.1:5000/bb/onnx:cpu")
    assert caught.value.message == (
        "push of 127.0.0.1:5000/bb/onnx:cpu failed: the registry answered HTTP 405 Method Not "
        "Allowed: it takes no pushes (read-only?)"
    )
    assert caught.value.tip and "read-only" in caught.value.tip
    assert caught.value.exit_code == 6


def test_a_registry_error_leaves_the_cli_as_an_error_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeAPI([{"errorDetail": {"message": READ_ONLY_REFUSAL}}])

    def push_base(*args: Any, **kwargs: Any) -> None:  # where `run` pushes the base image
        transfer.push(_api(fake), "127.0.0.1:5000/buildbench/base:x")

    monkeypatch.setattr(buildbench.run.engines, "run_on_engines", push_base)
    result = CliRunner().invoke(
        cli,
        ["run", "--results-dir", str(tmp_path)],
        prog_name="buildbench",
        catch_exceptions=False,
    )
    assert result.exit_code == 6
    lines = result.output.splitlines()
    assert lines[0].startswith("ERROR: push of 127.0.0.1:5000/buildbench/base:x failed: ")
    assert lines[1].startswith("TIP: check that the registry takes pushes")
    assert "Traceback" not in result.output
