"""The registry's HTTP API: whether an address answers like a registry, and the sizes its
manifest lists for an image (Docker schema 2 or OCI, a list followed to one platform)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import docker.auth
import docker.errors
import requests

from buildbench.engine.registry.address import is_loopback, parse_address
from buildbench.errors import RegistryError, UsageError

log = logging.getLogger("buildbench")

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
_LIST_TYPES = (DOCKER_LIST, OCI_INDEX)

_HTTP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ManifestSize:
    """What a registry stores for one image: its manifest's blobs, compressed, in bytes."""

    digest: str  # of the image manifest (for a list: of the entry that was followed)
    layers_bytes: int  # sum of `layers`
    config_bytes: int
    layers: tuple[int, ...]
    media_type: str


def _schemes(address: str) -> tuple[str, str]:
    # Engines treat loopback registries as insecure and most of them speak plain http; elsewhere
    # https is the rule and http the exception the engine must be configured for.
    return ("http", "https") if is_loopback(address) else ("https", "http")


def _session(address: str) -> requests.Session:
    session = requests.Session()
    # A proxy from the environment cannot reach this machine's loopback registry.
    session.trust_env = not is_loopback(address)
    return session


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
