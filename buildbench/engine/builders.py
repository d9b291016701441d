"""One timed no-cache build, by one of two builders chosen once per run
(`factory.choose_builder`): the classic builder through the Docker SDK, or BuildKit through the
Docker CLI. Both return a `BuildSample`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, Protocol

from buildbench.engine.api import LineSink

BuilderName = Literal["classic", "buildkit"]
BUILDERS: tuple[BuilderName, ...] = ("classic", "buildkit")

# What a build left in the engine, reported as soon as it exists ("image" or "cache" and its
# id): the run journals it, so that `buildbench clean` finds it even after a SIGKILL.
CreatedSink = Callable[[str, str], None]


class BuildContext(Protocol):
    """A build context that packs itself as a tar, anew for every build that sends it: as
    `docker build` does, packing is part of the timed build (see engine/upload.py)."""

    def pack(self, out: BinaryIO) -> None:
        """Write the context to `out` as an uncompressed tar, front to back (never seeks)."""
        ...


@dataclass(frozen=True)
class BuildRequest:
    dockerfile: str  # its path inside the context tar
    tag: str
    buildargs: Mapping[str, str]
    labels: Mapping[str, str]
    # The Dockerfile's text: BuildKit's steps are ordered by its stages, its warnings read it.
    dockerfile_text: str = ""


@dataclass
class BuildSample:
    image_id: str
    seconds: float
    first_output_seconds: float | None
    # From the build request until the context was packed and handed on whole (the engine, or
    # the CLI, had all of it but a pipe's buffer), and its size.
    context_seconds: float | None = None
    context_bytes: int | None = None
    steps: list[tuple[int, str, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # BuildKit's cache records this build created (the classic builder keeps none).
    cache_records: list[str] = field(default_factory=list)


class Builder(Protocol):
    name: BuilderName

    def build(
        self,
        context: BuildContext,
        request: BuildRequest,
        on_log: LineSink,
        on_created: CreatedSink,
    ) -> BuildSample:
        """One no-cache build timed from the request to the final image id, the context packed
        and sent inside that time, as `docker build` packs and sends it. Raises BuildFailed
        (recorded on the cell); leaves nothing behind but the final image when it fails or is
        interrupted."""
        ...
