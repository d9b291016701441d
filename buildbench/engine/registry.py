"""Push and pull images through a registry, and read what the registry stores for them.

`--registry HOST[:PORT]` names a registry the engine can already reach; `--registry local` runs
Debian's reference registry (`docker-registry`, distribution 2.8) on 127.0.0.1 with
`LocalRegistry`. Pushes and pulls go through the engine, as a user's would, so they are timed with
the engine's compression, uploads and layer extraction; the stored size is read from the registry
itself (the manifest), never estimated from the local image.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import docker
import docker.auth
import docker.errors
import docker.utils
import requests

from buildbench.errors import EngineUnavailable, RegistryError, UsageError

log = logging.getLogger("buildbench")

LOCAL = "local"  # the `--registry` value that asks for a LocalRegistry
BINARY = "docker-registry"
INSTALL_TIP = "install the reference registry: `apt-get install docker-registry`"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
_LIST_TYPES = (DOCKER_LIST, OCI_INDEX)

_HTTP_TIMEOUT = 10.0
_MARKER_HEADER = "X-Buildbench-Registry"
_PORT_ATTEMPTS = 5
_TAIL_BYTES = 4000
_LOCAL_TIP = "give --registry HOST[:PORT] of a registry that runs, or reinstall docker-registry"
# The engine closed or lost the connection in the middle of a push or pull stream.
_BROKEN_STREAM = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)
_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?")


@dataclass(frozen=True)
class ManifestSize:
    """What a registry stores for one image: its manifest's blobs, compressed, in bytes."""

    digest: str  # of the image manifest (for a list: of the entry that was followed)
    layers_bytes: int  # sum of `layers`
    config_bytes: int
    layers: tuple[int, ...]
    media_type: str


# --- addresses and references ----------------------------------------------------------------


def parse_address(text: str) -> str:
    """`HOST[:PORT]` as the engine names a registry, or a UsageError saying what is wrong."""
    address = text.strip()
    if "://" in address:
        raise UsageError(
            f"registry {text!r} has a scheme",
            tip="give HOST[:PORT] only: the engine itself decides between https and http",
        )
    if not _ADDRESS.fullmatch(address):
        raise UsageError(f"registry {text!r} is not HOST[:PORT]", tip="e.g. registry.lan:5000")
    # The engine reads `myhost/buildbench/onnx` as a Docker Hub repository: a registry host must
    # show a dot or a port, or be localhost.
    if not ("." in address or ":" in address or _host(address) == "localhost"):
        raise UsageError(
            f"registry {text!r} would be read as a Docker Hub user name",
            tip=f"add the port ({address}:5000) or the domain",
        )
    return address


def registry_reference(address: str, repository: str, tag: str) -> str:
    """The reference the engine pushes to, e.g. `127.0.0.1:5000/buildbench/onnx:cpu-RUNID`."""
    return f"{parse_address(address)}/{repository.strip('/')}:{tag}"


def _host(address: str) -> str:
    if address.startswith("["):
        return address[1 : address.index("]")]
    return address.rsplit(":", 1)[0]


def _is_loopback(address: str) -> bool:
    host = _host(address)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _schemes(address: str) -> tuple[str, str]:
    # Engines treat loopback registries as insecure and most of them speak plain http; elsewhere
    # https is the rule and http the exception the engine must be configured for.
    return ("http", "https") if _is_loopback(address) else ("https", "http")


def _session(address: str) -> requests.Session:
    session = requests.Session()
    # A proxy from the environment cannot reach this machine's loopback registry.
    session.trust_env = not _is_loopback(address)
    return session


# --- the registry's HTTP API -----------------------------------------------------------------


def check_registry(address: str) -> None:
    """Raise a UsageError unless `address` answers the registry API (200, or 401: wants login)."""
    with _session(address) as session:
        _base_url(session, parse_address(address))


def _base_url(session: requests.Session, address: str) -> str:
    """`SCHEME://ADDRESS` whose `/v2/` answers like a registry."""
    failures = []
    for scheme in _schemes(address):
        url = f"{scheme}://{address}"
        try:
            response = session.get(f"{url}/v2/", timeout=_HTTP_TIMEOUT)
        except requests.RequestException as exc:
            log.debug("registry probe %s/v2/: %r", url, exc)
            failures.append(f"{scheme}: {type(exc).__name__}")
            continue
        if response.status_code in (200, 401):
            return url
        failures.append(f"{scheme}: HTTP {response.status_code}")
    raise UsageError(
        f"registry {address} does not answer the registry API at /v2/ ({', '.join(failures)})",
        tip="check the address and that the registry runs, or use `--registry local`",
    )


def manifest_size(
    address: str, repository: str, tag: str, platform: str = "linux/amd64"
) -> ManifestSize:
    """The blob sizes the registry lists for `repository:tag`; a list is followed to `platform`."""
    with _session(address) as session:
        base = _base_url(session, parse_address(address))
        document, media_type, digest = _fetch_manifest(session, base, repository, tag)
        if media_type in _LIST_TYPES:
            entry = _pick_entry(document, platform)
            document, media_type, digest = _fetch_manifest(session, base, repository, entry)
    return parse_manifest(document, media_type, digest)


def _fetch_manifest(
    session: requests.Session, base: str, repository: str, reference: str
) -> tuple[dict[str, Any], str, str]:
    url = f"{base}/v2/{repository}/manifests/{reference}"
    headers = {"Accept": ", ".join(_IMAGE_TYPES + _LIST_TYPES)}
    response = _get(session, url, headers, repository)
    if response.status_code != 200:
        raise RegistryError(
            f"GET {url} answered HTTP {response.status_code}: {response.text[:300]}"
        )
    try:
        document = json.loads(response.content)
    except ValueError:
        raise RegistryError(f"GET {url} answered something that is not JSON") from None
    if not isinstance(document, dict):
        raise RegistryError(f"GET {url} answered JSON that is not a manifest")
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    media_type = str(document.get("mediaType") or content_type)
    # The header is the registry's own digest; without it, the digest is that of the bytes.
    digest = response.headers.get("Docker-Content-Digest") or (
        "sha256:" + hashlib.sha256(response.content).hexdigest()
    )
    return document, media_type, digest


def _get(
    session: requests.Session, url: str, headers: Mapping[str, str], repository: str
) -> requests.Response:
    """GET, answering one 401 challenge with the credentials of `docker login`, if any."""
    response = session.get(url, headers=headers, timeout=_HTTP_TIMEOUT)
    challenge = response.headers.get("WWW-Authenticate", "")
    if response.status_code != 401 or not challenge:
        return response
    registry = url.split("://", 1)[1].split("/", 1)[0]
    authorization = _authorize(session, challenge, _credentials(registry), repository)
    return session.get(
        url, headers={**headers, "Authorization": authorization}, timeout=_HTTP_TIMEOUT
    )


def _credentials(registry: str) -> tuple[str, str] | None:
    """The user's `docker login` for `registry`, as the engine's push uses it."""
    try:
        entry = docker.auth.load_config().resolve_authconfig(registry)
    except docker.errors.DockerException as exc:
        log.debug("no credentials for %s: %r", registry, exc)
        return None
    if not entry or not entry.get("Username"):
        return None
    return str(entry["Username"]), str(entry.get("Password", ""))


def _authorize(
    session: requests.Session,
    challenge: str,
    credentials: tuple[str, str] | None,
    repository: str,
) -> str:
    """The Authorization header for a Basic or Bearer (token server) challenge."""
    scheme = challenge.split(" ", 1)[0].lower()
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    if scheme == "basic":
        if credentials is None:
            raise RegistryError("the registry wants a login: run `docker login` for it first")
        user_pass = f"{credentials[0]}:{credentials[1]}".encode()
        return "Basic " + base64.b64encode(user_pass).decode()
    if scheme != "bearer" or "realm" not in params:
        raise RegistryError(f"the registry asks for an unknown authentication: {challenge}")
    query = {"service": params.get("service", ""), "scope": f"repository:{repository}:pull"}
    response = session.get(params["realm"], params=query, auth=credentials, timeout=_HTTP_TIMEOUT)
    if response.status_code != 200:
        raise RegistryError(f"the registry's token server answered HTTP {response.status_code}")
    answer = response.json()
    token = answer.get("token") or answer.get("access_token")
    if not token:
        raise RegistryError("the registry's token server answered no token")
    return f"Bearer {token}"


def _pick_entry(index: Mapping[str, Any], platform: str) -> str:
    """The digest of `platform`'s manifest in a list, or of the only image it holds."""
    wanted = platform.split("/")
    images = [
        entry
        for entry in index.get("manifests", [])
        if entry.get("platform", {}).get("os") not in (None, "unknown")  # skip attestations
    ]
    for entry in images:
        plat = entry["platform"]
        found = [plat.get("os"), plat.get("architecture"), plat.get("variant")]
        if found[: len(wanted)] == wanted:
            return str(entry["digest"])
    if len(images) == 1:
        return str(images[0]["digest"])
    offered = sorted(
        f"{e['platform'].get('os')}/{e['platform'].get('architecture')}" for e in images
    )
    raise RegistryError(f"the manifest list has no {platform} image (it has {offered})")


def parse_manifest(document: Mapping[str, Any], media_type: str, digest: str) -> ManifestSize:
    """Sizes from a Docker schema 2 or OCI image manifest."""
    if media_type not in _IMAGE_TYPES:
        raise RegistryError(
            f"manifest {digest} is a {media_type or 'untyped'} manifest, not an image"
        )
    try:
        layers = tuple(int(layer["size"]) for layer in document["layers"])
        config_bytes = int(document["config"]["size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryError(f"manifest {digest} is malformed: {exc!r}") from None
    return ManifestSize(digest, sum(layers), config_bytes, layers, media_type)


# --- push and pull through the engine --------------------------------------------------------


def tag(api: docker.APIClient, image_id: str, reference: str) -> None:
    """Name the local image `reference`, so that the engine can push it."""
    repository, tag_name = _split(reference)
    try:
        if not api.tag(image_id, repository, tag=tag_name):
            raise RegistryError(f"the engine did not tag {image_id} as {reference}")
    except docker.errors.APIError as exc:
        raise RegistryError(f"tagging {image_id} as {reference} failed: {_why(exc)}") from None


def untag(api: docker.APIClient, reference: str) -> None:
    """Remove the name `reference`; the image goes too if no other name holds it (a pull's)."""
    try:
        api.remove_image(reference)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        raise RegistryError(f"removing {reference} failed: {_why(exc)}") from None


def push(
    api: docker.APIClient, reference: str, on_progress: Callable[[str], None] | None = None
) -> float:
    """Push `reference` (already tagged) and return the seconds until the engine's stream ends."""
    repository, tag_name = _split(reference)
    start = time.perf_counter()
    try:
        # With the tag explicit: without one, the engine pushes every tag of the repository.
        stream = api.push(repository, tag=tag_name, stream=True, decode=True)
        end = _follow(stream, f"push of {reference}", on_progress)
    except docker.errors.APIError as exc:
        raise _failed(f"push of {reference}", _why(exc)) from None
    except _BROKEN_STREAM as exc:
        raise _engine_went_away(f"push of {reference}", exc) from None
    seconds = time.perf_counter() - start
    # A stream that stops without the pushed digest was cut off, and its time means nothing.
    digest = end.aux.get("Digest")
    if not digest:
        raise RegistryError(f"push of {reference} ended without the registry's digest ({end})")
    log.debug("pushed %s (%s) in %.1f s", reference, digest, seconds)
    return seconds


def pull(
    api: docker.APIClient, reference: str, on_progress: Callable[[str], None] | None = None
) -> float:
    """Pull `reference` and return the seconds until the engine's stream ends.

    Layers the engine already holds (the base image's, usually) are not downloaded again.
    """
    start = time.perf_counter()
    try:
        stream = api.pull(reference, stream=True, decode=True)
        end = _follow(stream, f"pull of {reference}", on_progress)
    except docker.errors.APIError as exc:
        raise _failed(f"pull of {reference}", _why(exc)) from None
    except _BROKEN_STREAM as exc:
        raise _engine_went_away(f"pull of {reference}", exc) from None
    seconds = time.perf_counter() - start
    # The engine ends a complete pull with "Status: Downloaded newer image ..." or "... up to date".
    if not end.status.startswith("Status:"):
        raise RegistryError(f"pull of {reference} ended before the engine said it was done ({end})")
    log.debug("pulled %s in %.1f s", reference, seconds)
    return seconds


@dataclass(frozen=True)
class _StreamEnd:
    status: str  # the last status line
    aux: Mapping[str, Any]  # the last `aux` object: a push's Tag, Digest and Size


def _follow(
    stream: Iterable[Any], action: str, on_progress: Callable[[str], None] | None
) -> _StreamEnd:
    """Read a push/pull stream to its end and raise its error line, which docker-py does not."""
    status = ""
    aux: Mapping[str, Any] = {}
    errors: list[str] = []
    for event in stream:
        if not isinstance(event, dict):
            continue
        if "error" in event or "errorDetail" in event:
            # Read on to the end, so that the engine's connection is not left half read.
            detail = event.get("errorDetail") or {}
            errors.append(str(event.get("error") or detail.get("message") or event).strip())
            continue
        if isinstance(event.get("aux"), dict):
            aux = event["aux"]
        if "status" in event:
            status = str(event["status"])
            if on_progress is not None:
                on_progress(_progress_line(event))
    if errors:
        raise _failed(action, errors[0])
    return _StreamEnd(status, aux)


def _progress_line(event: Mapping[str, Any]) -> str:
    parts = [f"{event['id']}:" if event.get("id") else "", event["status"], event.get("progress")]
    return " ".join(str(part) for part in parts if part)


def _split(reference: str) -> tuple[str, str]:
    repository, tag_name = docker.utils.parse_repository_tag(reference)
    return repository, tag_name or "latest"


def _failed(action: str, why: str) -> RegistryError:
    """The engine's reason, on one line; a 405 is said plainly (the engine quotes the registry's
    unparsable answer to it, e.g. `error parsing HTTP 405 response body: ...`)."""
    log.debug("%s failed: %s", action, why)
    if re.search(r"\b405\b", why):
        why = "the registry answered HTTP 405 Method Not Allowed: it takes no pushes (read-only?)"
    return RegistryError(f"{action} failed: {' '.join(why.split())}")


def _engine_went_away(action: str, exc: Exception) -> EngineUnavailable:
    log.debug("%s: %r", action, exc)
    return EngineUnavailable(f"the Docker engine stopped answering during the {action}")


def _why(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)


# --- a registry of our own -------------------------------------------------------------------


def registry_config(
    port: int, storage: Path, secret: str, marker: str, *, read_only: bool = False
) -> str:
    """The reference registry's YAML: loopback only, storage in `storage`, deletes allowed;
    `read_only`: it serves pulls and refuses every push (405), as a mirror does.

    Strings are written as JSON, which YAML reads as double-quoted scalars.
    """
    maintenance = ["  maintenance:", "    readonly:", "      enabled: true"] if read_only else []
    return "\n".join(
        [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "http:",
            f"  addr: {json.dumps(f'127.0.0.1:{port}')}",
            # Shared by nobody, but without one the registry warns at every start.
            f"  secret: {json.dumps(secret)}",
            "  headers:",
            # Tells our registry's answers from another program's that took the port first.
            f"    {_MARKER_HEADER}: [{json.dumps(marker)}]",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {json.dumps(str(storage))}",
            "  delete:",
            "    enabled: true",
            *maintenance,
            "",
        ]
    )


def find_binary(binary: str | None = None) -> str:
    """The path of the reference registry, or a UsageError that says how to install it."""
    name = binary or BINARY
    path = shutil.which(name)
    if path is None:
        raise UsageError(
            f"`{name}` (the reference container registry) is not installed; "
            "`--registry local` runs it",
            tip=INSTALL_TIP,
        )
    return path


def free_port() -> int:
    """A port that nothing listens on at 127.0.0.1 now (another program may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRegistry:
    """Debian's reference registry on 127.0.0.1, for the length of a `with` block.

    Its storage is a temporary directory, removed on exit with everything pushed into it.
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        start_timeout: float = 30.0,
        grace: float = 5.0,
        read_only: bool = False,
    ) -> None:
        self._binary = binary
        self._read_only = read_only
        self._start_timeout = start_timeout
        self._grace = grace
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._port: int | None = None
        self._marker = secrets.token_hex(8)

    @property
    def address(self) -> str:
        if self._port is None:
            raise RuntimeError("the local registry is not running")
        return f"127.0.0.1:{self._port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def storage(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("the local registry is not running")
        return self._workdir / "storage"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        binary = find_binary(self._binary)
        self._workdir = Path(tempfile.mkdtemp(prefix="buildbench-registry-"))
        try:  # Ctrl-C while it starts must not leave it running either
            for _ in range(_PORT_ATTEMPTS):
                port = free_port()
                self._launch(binary, port)
                if self._wait_ready(port):
                    self._port = port
                    log.debug("local registry %s answers (pid %s)", self.address, self.pid)
                    return
                self._stop_process()  # lost the port to another program: try another
            raise RegistryError(f"{BINARY} found no free port on 127.0.0.1", tip=_LOCAL_TIP)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the registry (SIGTERM, then SIGKILL after the grace period), remove its storage."""
        try:
            self._stop_process()
        finally:
            self._port = None
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    def _launch(self, binary: str, port: int) -> None:
        assert self._workdir is not None
        config = self._workdir / "config.yml"
        config.write_text(
            registry_config(
                port,
                self._workdir / "storage",
                secrets.token_hex(16),
                self._marker,
                read_only=self._read_only,
            )
        )
        # REGISTRY_* variables override the config (REGISTRY_HTTP_ADDR could open it to the LAN).
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(self._workdir / "registry.log", "wb") as stderr:  # one attempt's log only
            self._process = subprocess.Popen(
                [binary, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                # Its own session: a terminal's Ctrl-C reaches buildbench, which stops it in order.
                start_new_session=True,
            )

    def _wait_ready(self, port: int) -> bool:
        """True once our registry answers; False if it lost the port; RegistryError otherwise."""
        assert self._process is not None
        deadline = time.monotonic() + self._start_timeout
        with requests.Session() as session:
            session.trust_env = False
            while time.monotonic() < deadline:
                code = self._process.poll()
                if code is not None:
                    tail = self._stderr_tail()
                    if "address already in use" in tail:
                        return False
                    raise RegistryError(
                        f"{BINARY} exited with status {code} at start: {tail}", tip=_LOCAL_TIP
                    )
                if self._answers(session, port):
                    return True
                time.sleep(0.05)
        raise RegistryError(
            f"{BINARY} did not answer on 127.0.0.1:{port} within {self._start_timeout:g} s; "
            f"its log ends: {self._stderr_tail()}",
            tip=_LOCAL_TIP,
        )

    def _answers(self, session: requests.Session, port: int) -> bool:
        try:
            response = session.get(f"http://127.0.0.1:{port}/v2/", timeout=1.0)
        except requests.RequestException:
            return False
        return response.status_code == 200 and response.headers.get(_MARKER_HEADER) == self._marker

    def _stderr_tail(self) -> str:
        assert self._workdir is not None
        with contextlib.suppress(OSError), open(self._workdir / "registry.log", "rb") as log_file:
            log_file.seek(0, os.SEEK_END)
            log_file.seek(max(0, log_file.tell() - _TAIL_BYTES))
            lines = log_file.read().decode(errors="replace").strip().splitlines()
            return "\n".join(lines[-10:]) or "(empty)"
        return "(no log)"

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(self._grace)
        finally:
            # Also reached by a second Ctrl-C during the grace period: never leave it running.
            if process.poll() is None:
                log.debug("%s ignored SIGTERM for %g s: killing it", BINARY, self._grace)
                process.kill()
            process.wait()
