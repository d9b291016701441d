"""Preflight's base-image check says what went wrong: a missing image, or a lost engine."""

from __future__ import annotations

import pytest

from buildbench.errors import EngineUnavailable, ImageNotFound
from buildbench.run.preflight import ensure_base_image
from tests.fakes import FakeEngine


class EngineGoneDuringPull(FakeEngine):
    def pull(self, ref: str, on_progress: object = None) -> float:
        raise EngineUnavailable("the Docker engine stopped answering during the pull of x")


def test_an_engine_lost_during_the_pull_is_no_engine_not_a_missing_image() -> None:
    with pytest.raises(EngineUnavailable) as caught:
        ensure_base_image(EngineGoneDuringPull(), "python:3.11-slim")
    assert caught.value.exit_code == 3


def test_a_pull_that_fails_is_a_missing_base_image() -> None:
    with pytest.raises(ImageNotFound, match="pulling it failed") as caught:
        ensure_base_image(FakeEngine(), "python:3.11-slim")
    assert caught.value.exit_code == 4
