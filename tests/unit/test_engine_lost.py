"""A connection error from any engine call means the engine went away only if it stops
answering; the run then ends as `engine_lost` instead of recording one cell's error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest
import requests.exceptions

from buildbench.engine.dockersdk import DockerEngine
from buildbench.engine.endpoint import Endpoint
from buildbench.errors import EngineUnavailable

BROKEN = requests.exceptions.ConnectionError("Connection aborted.")


class BrokenAPI:
    """Every call fails to connect, as on a pooled connection to an engine shutting down."""

    api_version = "1.41"

    def containers(self, **_: Any) -> list[dict[str, Any]]:
        raise BROKEN

    def images(self, **_: Any) -> list[str]:
        raise docker.errors.APIError("500 Server Error: the engine answered")

    def get_image(self, ref: str, chunk_size: int) -> Iterator[bytes]:
        yield b"first chunk"
        raise BROKEN


class Probe:
    """The client of a new connection: it answers only if the engine is still there."""

    def __init__(self, still_there: bool) -> None:
        self.still_there, self.closed = still_there, False

    def ping(self) -> bool:
        if not self.still_there:
            raise BROKEN
        return True

    def close(self) -> None:
        self.closed = True


class ProbedEndpoint(Endpoint):
    def __init__(self, still_there: bool) -> None:
        super().__init__("unix:///nonexistent.sock")
        self.probes: list[Probe] = []
        self.still_there = still_there

    def client(self, version: str | None = None, timeout: int = 600) -> Any:
        assert version == "1.41" and timeout <= 10  # a quick question, in the engine's API
        self.probes.append(Probe(self.still_there))
        return self.probes[-1]


def _engine(still_there: bool) -> tuple[DockerEngine, ProbedEndpoint]:
    engine = DockerEngine.__new__(DockerEngine)  # connected to nothing: the API is a fake
    engine.api = BrokenAPI()  # type: ignore[assignment]
    engine._endpoint = endpoint = ProbedEndpoint(still_there)
    return engine, endpoint


def test_a_call_to_an_engine_that_went_away_is_engine_unavailable() -> None:
    engine, endpoint = _engine(still_there=False)
    with pytest.raises(EngineUnavailable, match="no Docker engine answers"):
        engine.containers_using("img")
    assert [probe.closed for probe in endpoint.probes] == [True]


def test_a_call_that_fails_while_the_engine_answers_keeps_its_error() -> None:
    engine, _ = _engine(still_there=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        engine.containers_using("img")


def test_a_stream_that_breaks_because_the_engine_went_away_is_engine_unavailable() -> None:
    engine, _ = _engine(still_there=False)
    stream = engine.image_archive("img")
    assert next(stream) == b"first chunk"
    with pytest.raises(EngineUnavailable):
        next(stream)


def test_an_api_error_is_an_answer_and_asks_the_engine_nothing_more() -> None:
    engine, endpoint = _engine(still_there=False)
    with pytest.raises(docker.errors.APIError):
        engine.dangling_images()
    assert endpoint.probes == []
