"""Docker 20.10 refuses a second `system df` while one is counting: a run beside another on
a shared engine (the BuildKit builder lists cache records around every build) waits for it."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest
import requests

from buildbench.engine import dockersdk
from buildbench.engine.dockersdk import DockerEngine

RECORD = {"ID": "r1", "Parent": "", "Size": 10, "InUse": False, "Description": "mount"}


def _error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("df", response=response, explanation=explanation)


class CountingAPI:
    """`df` answers the given errors first, then the build cache."""

    def __init__(self, errors: list[docker.errors.APIError]) -> None:
        self.errors, self.calls = errors, 0

    def df(self) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"BuildCache": [RECORD]}


def _engine(api: CountingAPI) -> DockerEngine:
    engine = DockerEngine.__new__(DockerEngine)  # connected to nothing: the API is a fake
    engine.api = api  # type: ignore[assignment]
    return engine


BUSY = "a disk usage operation is already running"


def test_a_count_already_running_is_waited_for() -> None:
    api = CountingAPI([_error(500, BUSY), _error(500, BUSY)])
    records = _engine(api).build_cache()
    assert [(r.id, r.size_bytes, r.description) for r in records] == [("r1", 10, "mount")]
    assert api.calls == 3


def test_another_error_is_raised_at_once() -> None:
    api = CountingAPI([_error(500, "driver failed"), _error(500, BUSY)])
    with pytest.raises(docker.errors.APIError, match="driver failed"):
        _engine(api).build_cache()
    assert api.calls == 1


def test_an_engine_still_counting_after_the_wait_raises_its_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dockersdk, "_DISK_USAGE_WAIT", 0.3)
    api = CountingAPI([_error(500, BUSY) for _ in range(100)])
    with pytest.raises(docker.errors.APIError, match="already running"):
        _engine(api).build_cache()
    assert 2 <= api.calls < 100


def test_an_empty_answer_is_an_answer() -> None:
    class Empty(CountingAPI):
        def df(self) -> dict[str, Any]:
            self.calls += 1
            return {}

    api = Empty([])
    assert _engine(api).build_cache() == []
    assert api.calls == 1
