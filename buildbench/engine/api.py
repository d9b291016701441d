"""The seam between buildbench and a container engine.

Everything else in buildbench talks to an `Engine`; `buildbench.docker_engine` implements it
with the Docker SDK for Python, and the unit tests implement it with a fake.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal, Protocol


@dataclass(frozen=True)
class EngineInfo:
    server_version: str
    api_version: str
    os: str
    kernel: str
    storage_driver: str
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


@dataclass(frozen=True)
class BuildEvent:
    """One line of build output, or the id of the finished image."""

    kind: Literal["log", "image"]
    text: str


@dataclass(frozen=True)
class Mount:
    source: str
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
    mounts: tuple[Mount, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    gpus: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    # The image's ENTRYPOINT is replaced: the command runs as given, whatever the image wraps.
    entrypoint: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerOutcome:
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    oom_killed: bool = False
    seconds: float = 0.0
    started_at: float = 0.0  # epoch seconds just before the start request: cold start's origin


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    image_id: str
    state: str  # as the engine says: "created", "running", "exited", ...
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state in {"running", "paused", "restarting"}


class Engine(Protocol):
    def info(self) -> EngineInfo: ...

    def image(self, ref: str) -> ImageInfo | None:
        """The image called `ref`, or None when the engine has no such image."""

    def pull(self, ref: str) -> None: ...

    def import_image(self, tarball: Path, ref: str, changes: list[str]) -> str:
        """Import a root filesystem tarball as image `ref`; returns the image id."""

    def build(
        self,
        context: BinaryIO,
        *,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> Iterator[BuildEvent]:
        """Build without cache and without pulling; raise `BuildFailed` when the build fails."""

    def remove_image(self, ref: str) -> bool:
        """Remove an image and its untagged parents; False when it was gone or still in use."""

    def images_labelled(self, label: str) -> list[str]:
        """Ids of all images (dangling included) that carry `label` (`key` or `key=value`)."""

    def containers_labelled(self, label: str) -> list[ContainerInfo]:
        """All containers (stopped ones included) that carry `label` (`key` or `key=value`)."""

    def remove_container(self, ref: str) -> bool:
        """Remove a container (even a running one) and its anonymous volumes; False if gone."""

    def prune_build_cache(self) -> int:
        """Prune the whole BuildKit build cache; returns the bytes reclaimed."""

    def image_archive(self, ref: str) -> Iterator[bytes]:
        """The image as `docker save` writes it, in chunks."""

    def run(self, image: str, spec: ContainerSpec) -> ContainerOutcome:
        """Run a container to completion (or timeout) and always remove it."""
