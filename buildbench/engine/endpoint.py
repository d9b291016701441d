"""Which engine to talk to, chosen the Docker way: `--engine URL`, `--context NAME`, else
`DOCKER_HOST` (with `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`), else `DOCKER_CONTEXT` or the
current `docker context`, else the local socket.

The Docker SDK for Python connects (`DockerClient`, with the ssh client for ssh://); the BuildKit
builder drives the `docker` CLI at the same endpoint through the environment it is given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.context
import docker.errors
import docker.tls
import docker.utils

from buildbench.errors import UsageError
from buildbench.labels import mask_url

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_SCHEMES = ("unix://", "tcp://", "ssh://", "npipe://", "http://", "https://")


@dataclass(frozen=True)
class Endpoint:
    """An engine address and how to reach it; `context` when it came from a docker context."""

    url: str
    tls: docker.tls.TLSConfig | None = field(default=None, compare=False)
    context: str | None = None
    # Environment for the docker CLI (BuildKit builds) to reach this same engine.
    cli_env: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def masked(self) -> str:
        shown = mask_url(self.url)
        return f"{shown} (context {self.context})" if self.context else shown

    @property
    def local(self) -> bool:
        """A socket or pipe on this machine. Nothing in buildbench relies on it: recorded only."""
        return self.url.startswith(("unix://", "npipe://"))

    def client_kwargs(self, timeout: int = 600) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"base_url": self.url, "timeout": timeout}
        if self.tls is not None:
            kwargs["tls"] = self.tls
        if self.url.startswith("ssh://"):
            kwargs["use_ssh_client"] = True  # the system's ssh: its config, agent and known hosts
        return kwargs

    def client(self, version: str | None = None, timeout: int = 600) -> docker.DockerClient:
        kwargs = self.client_kwargs(timeout)
        if version:
            kwargs["version"] = version
        return docker.DockerClient(**kwargs)


def from_url(url: str) -> Endpoint:
    """`--engine URL`: unix://, tcp:// (TLS from DOCKER_TLS_VERIFY/DOCKER_CERT_PATH), ssh://."""
    if not url.startswith(_SCHEMES):
        raise UsageError(
            f"--engine {url!r} is not an engine address",
            tip="give unix:///path/docker.sock, tcp://host:2376 or ssh://user@host",
        )
    tls = None
    if url.startswith(("tcp://", "https://")):
        tls = docker.utils.kwargs_from_env().get("tls")
    env = {"DOCKER_HOST": url, "DOCKER_CONTEXT": ""}
    for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    return Endpoint(url, tls, cli_env=env)


def from_context(name: str) -> Endpoint:
    """`--context NAME`: a `docker context` (its endpoint and TLS material)."""
    try:
        context = docker.context.ContextAPI.get_context(name)
    except docker.errors.ContextException as exc:
        raise UsageError(
            f"docker context {name!r} cannot be read ({exc})", tip="see `docker context ls`"
        ) from None
    if context is None:
        raise UsageError(f"no docker context called {name!r}", tip="see `docker context ls`")
    url = context.Host or DEFAULT_SOCKET
    tls = context.TLSConfig if isinstance(context.TLSConfig, docker.tls.TLSConfig) else None
    return Endpoint(url, tls, context=name, cli_env={"DOCKER_CONTEXT": name, "DOCKER_HOST": ""})


def default_endpoint() -> Endpoint:
    """What `docker` would use here: DOCKER_HOST, else DOCKER_CONTEXT / the current context."""
    if os.environ.get("DOCKER_HOST"):
        return from_url(os.environ["DOCKER_HOST"])
    wanted = os.environ.get("DOCKER_CONTEXT")
    if wanted and wanted != "default":
        return from_context(wanted)
    try:
        current = docker.context.ContextAPI.get_current_context()
    except docker.errors.ContextException:
        current = None
    if current is not None and current.Name != "default" and current.Host:
        return from_context(current.Name)
    return Endpoint(DEFAULT_SOCKET)


def resolve(engines: tuple[str, ...] = (), contexts: tuple[str, ...] = ()) -> list[Endpoint]:
    """The engines a command uses, each once, in the order given; the default without any."""
    found = [from_url(url) for url in engines] + [from_context(name) for name in contexts]
    unique = list(dict.fromkeys(found))
    return unique or [default_endpoint()]
