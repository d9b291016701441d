"""Engines are made in one place (engine/factory.py): the commands and the multi-engine runner
get theirs there, and close what they made."""

from __future__ import annotations

import pytest

from buildbench.cli.options import one_engine
from buildbench.engine import factory
from buildbench.engine.endpoint import Endpoint
from buildbench.errors import EngineUnavailable
from buildbench.run.engines import labels_for
from tests.fakes import FakeEngine


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Endpoint | None, FakeEngine]]:
    """Every engine the factory made, with the endpoint it was asked for."""
    found: list[tuple[Endpoint | None, FakeEngine]] = []

    def make(endpoint: Endpoint | None = None) -> FakeEngine:
        found.append((endpoint, FakeEngine(address=endpoint.url if endpoint else "default")))
        return found[-1][1]

    monkeypatch.setattr(factory, "make_engine", make)
    return found


def test_a_command_gets_its_one_engine_from_the_factory(made: list) -> None:
    engine = one_engine(("unix:///run/a.sock",), ())
    assert made == [(Endpoint("unix:///run/a.sock"), engine)]


def test_the_multi_engine_runner_gets_each_engine_there_and_closes_it(made: list) -> None:
    endpoints = [Endpoint("unix:///run/a.sock"), Endpoint("unix:///run/b.sock")]
    assert labels_for(endpoints) == ["fake-engine-1", "fake-engine-2"]
    assert [endpoint for endpoint, _ in made] == endpoints
    assert all(engine.calls[-1] == ("close",) for _, engine in made)


def test_the_factory_connects_a_docker_engine_or_says_none_answers() -> None:
    with pytest.raises(EngineUnavailable, match="no Docker engine answers at unix:///nowhere"):
        factory.make_engine(Endpoint("unix:///nowhere.sock"))
