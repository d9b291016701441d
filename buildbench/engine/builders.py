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


@dataclass(frozen=True)
class BuildRequest:
    dockerfile: str  # its path inside the context tar
    tag: str
    buildargs: Mapping[str, str]
    labels: Mapping[str, str]


@dataclass
class BuildSample:
    image_id: str
    seconds: float
    first_output_seconds: float | None
    steps: list[tuple[int, str, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # BuildKit's cache records this build created (the classic builder keeps none).
    cache_records: list[str] = field(default_factory=list)


class Builder(Protocol):
    name: BuilderName

    def build(
        self,
        context: BinaryIO,
        request: BuildRequest,
        on_log: LineSink,
        on_created: CreatedSink,
    ) -> BuildSample:
        """One no-cache build timed from the request to the final image id. Raises BuildFailed
        (recorded on the cell); leaves nothing behind but the final image when it fails or is
        interrupted."""
        ...
