"""The one place engines and builders are made: every command, the multi-engine runner and the
tests get their `Engine` here, so that the implementation (the Docker SDK's) is chosen once and a
test replaces it once (`factory.make_engine`); a run gets its `Builder` here too, chosen by name
(`choose_builder`), so that the builders' protocol (builders.py) knows none of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from buildbench.engine.api import Engine
from buildbench.engine.builders import Builder, BuilderName
from buildbench.engine.buildkit import BuildkitBuilder
from buildbench.engine.classic import ClassicBuilder
from buildbench.engine.dockersdk import DockerEngine
from buildbench.engine.endpoint import Endpoint


def make_engine(endpoint: Endpoint | None = None) -> Engine:
    """A connected engine at `endpoint` (the Docker default without one); EngineUnavailable
    when none answers there. The caller closes it."""
    return DockerEngine(endpoint)


@contextlib.contextmanager
def engine_at(endpoint: Endpoint | None = None) -> Iterator[Engine]:
    """`make_engine`, closed when the block ends."""
    engine = make_engine(endpoint)
    try:
        yield engine
    finally:
        engine.close()


def choose_builder(name: BuilderName, engine: Engine, endpoint: Endpoint) -> Builder:
    """The run's builder; a UsageError now (not in the first cell) when it cannot work here."""
    if name == "buildkit":
        return BuildkitBuilder(engine, endpoint)
    return ClassicBuilder(engine)
