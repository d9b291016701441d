"""The seam between buildbench and a container engine.

Everything else in buildbench talks to an `Engine`; `buildbench.engine.dockersdk` implements it
with the Docker SDK for Python, and the unit tests implement it with a fake. Nothing here names
a path on the client's machine: an engine may be remote (ssh://, tcp://, docker-in-docker), so
files reach it only as archives through the API (build contexts, volumes filled with
`fill_volume`).
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, Protocol

LineSink = Callable[[str], None]


@dataclass(frozen=True)
class EngineInfo:
    """What the engine says of itself (`docker version` and `docker info`)."""

    server_version: str
    api_version: str
    os: str
    arch: str
    kernel: str
    storage_driver: str
    name: str = ""  # the engine machine's host name
    cpus: int | None = None
    memory_bytes: int | None = None
    runtimes: tuple[str, ...] = ()

    @property
    def has_nvidia_runtime(self) -> bool:
        return "nvidia" in self.runtimes


@dataclass(frozen=True)
class ImageInfo:
    id: str
    size_bytes: int
    layers: tuple[str, ...]
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    user: str = ""  # the image's USER ("" when it runs as root by default)


@dataclass(frozen=True)
class BuildEvent:
    """One line of build output, or the id of the finished image."""

    kind: Literal["log", "image"]
    text: str


@dataclass(frozen=True)
class VolumeMount:
    """An engine-side volume (never a host path) mounted into a container."""

    volume: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class ContainerSpec:
    """How a throwaway container runs: locked down unless a field says otherwise."""

    command: list[str]
    user: str = "65534:65534"
    network: bool = False
    read_only: bool = True
    tmpfs: Mapping[str, str] = field(default_factory=lambda: {"/tmp": "size=256m"})
    memory_bytes: int = 4 * 1024**3
    pids_limit: int = 256
    timeout_seconds: float = 300.0
    # The timeout counts from the container's last stderr line (its progress) instead of its
    # start: a long run on a slow or busy machine is not a hang; a silent one is.
    timeout_from_last_line: bool = False
    volumes: tuple[VolumeMount, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    gpus: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    # The image's ENTRYPOINT is replaced: the command runs as given, whatever the image wraps.
    entrypoint: tuple[str, ...] = ()
    # Files copied in through the API before the start: (directory, tar archive). The
    # directory must be writable: the image's own (read_only=False) or a volume's.
    inputs: tuple[tuple[str, bytes], ...] = ()
    # Join this container's network namespace instead (a service's, which has no network of
    # its own): 127.0.0.1 is the service's loopback, and nothing else is reachable.
    network_of: str | None = None


@dataclass(frozen=True)
class ContainerOutcome:
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    oom_killed: bool = False
    seconds: float = 0.0  # from the start request until the container stopped
    # Cold start's first part without mixing clocks (the engine may be another machine): how
    # long the start request took (client clock), and when the engine says the container's
    # process started (engine clock, epoch seconds), to compare with the program's own clock.
    start_request_seconds: float = 0.0
    engine_started_epoch: float | None = None


@dataclass(frozen=True)
class ServiceOutcome:
    """A service container measured by a client container in its network namespace."""

    client: ContainerOutcome  # the client's own outcome (its report is on its stdout)
    started: bool = True  # False: the engine refused to start the service (see log_tail)
    # The service's start request (client clock) and when its process started (engine clock).
    start_request_seconds: float = 0.0
    engine_started_epoch: float | None = None
    exit_code: int | None = None  # None: still running when the client ended
    oom_killed: bool = False
    log_tail: tuple[str, ...] = ()  # its last output lines, stdout and stderr together
    peak_memory_bytes: int | None = None  # as the engine's stats report it
    cpu_seconds: float | None = None  # CPU time it used, start-up and load together


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    image_id: str
    state: str  # as the engine says: "created", "running", "exited", ...
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state in {"running", "paused", "restarting"}


@dataclass(frozen=True)
class CacheRecord:
    """One record of BuildKit's build cache (`docker system df -v`)."""

    id: str
    parent: str | None
    size_bytes: int
    in_use: bool
    description: str = ""


class Engine(Protocol):
    @property
    def endpoint(self) -> str:
        """Where the engine answers, credentials masked (unix:///..., tcp://..., ssh://...)."""
        ...

    def info(self) -> EngineInfo: ...

    def close(self) -> None:
        """Let go of the connections to the engine."""

    def image(self, ref: str) -> ImageInfo | None:
        """The image called `ref`, or None when the engine has no such image."""

    def pull(self, ref: str, on_progress: LineSink | None = None) -> float:
        """Pull `ref`; its seconds. Raises when the engine reports an error."""

    def push(self, ref: str, on_progress: LineSink | None = None) -> float:
        """Push `ref` (tagged for its registry); its seconds. Raises on an error."""

    def tag(self, image: str, ref: str) -> None: ...

    def import_image(self, tarball: BinaryIO, ref: str, changes: list[str]) -> str:
        """Import a root filesystem tarball (uploaded through the API) as `ref`; its id."""

    def build(
        self,
        context: Iterable[bytes],
        *,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> Iterator[BuildEvent]:
        """Build without cache and without pulling (classic builder), the context a tar sent as
        `context` yields it (chunked: packed while it goes); raise `BuildFailed` when the build
        fails. Closing the iterator early cancels the build."""

    def image_children(self, ref: str) -> list[str]:
        """Ids of the images whose parent is `ref` (the classic builder's step chain)."""

    def containers_using(self, image: str) -> list[str]:
        """Ids of the containers (any state) made from `image` or an image built on it."""

    def remove_image(self, ref: str) -> bool:
        """Remove an image (an untag, for a tag of an image with other tags) and its untagged
        parents; False when it was gone or is still in use."""

    def dangling_images(self) -> list[str]:
        """Ids of the untagged images no other image builds on."""

    def images_labelled(self, label: str) -> list[str]:
        """Ids of all images (dangling included) that carry `label` (`key` or `key=value`)."""

    def containers_labelled(self, label: str) -> list[ContainerInfo]:
        """All containers (stopped ones included) that carry `label` (`key` or `key=value`)."""

    def remove_container(self, ref: str) -> bool:
        """Remove a container (even a running one) and its anonymous volumes; False if gone."""

    def create_volume(self, name: str, labels: Mapping[str, str]) -> None: ...

    def fill_volume(self, volume: str, archive: bytes, image: str) -> None:
        """Unpack a tar archive into `volume`, through a never-started helper container of
        `image` (the engine needs one to copy into); the helper is removed."""

    def read_volume(self, volume: str, path: str, image: str) -> bytes:
        """A tar archive of `path` (relative to the volume's root) as `docker cp` gives it,
        read back the way `fill_volume` writes; empty when the volume has no such path."""

    def volumes_labelled(self, label: str) -> list[str]: ...

    def remove_volume(self, name: str) -> bool: ...

    def build_cache(self) -> list[CacheRecord]:
        """Every record of the BuildKit build cache."""

    def prune_cache_records(self, ids: list[str]) -> int:
        """Remove exactly these build cache records (children before parents); bytes freed."""

    def image_archive(self, ref: str) -> Iterator[bytes]:
        """The image as `docker save` writes it, in chunks."""

    def run(
        self, image: str, spec: ContainerSpec, on_stderr: LineSink | None = None
    ) -> ContainerOutcome:
        """Run a container to completion (or timeout) and always remove it; `on_stderr` gets
        its standard error line by line while it runs."""

    def serve(
        self,
        image: str,
        service: ContainerSpec,
        client_image: str,
        client: ContainerSpec,
        on_stderr: LineSink | None = None,
    ) -> ServiceOutcome:
        """Start `image` as a service with its own CMD/ENTRYPOINT (`service.command` is not
        used), locked down as `run` does and with no port published; run `client` to completion
        in its network namespace; stop the client early (SIGTERM) if the service dies. The
        service's stats, exit code and log tail are read, and both containers always removed."""

    def hold(self, image: str, labels: Mapping[str, str]) -> AbstractContextManager[None]:
        """A container that lives exactly as long as this context (or this process): it marks
        its labels as in use, for `buildbench clean` on any machine sharing the engine."""


def tar_of(files: Mapping[str, bytes], mode: int = 0o644) -> bytes:
    """An in-memory tar of `files` (name -> content), world-readable: what `fill_volume` and
    `ContainerSpec.inputs` take."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
