"""A container's timeout counts from its start, or, for a model smoke test (each step reports
its progress on stderr), from its last line: a long run on a busy machine is not a hang."""

from __future__ import annotations

import threading
import time
from typing import Any

import requests.exceptions

from buildbench.engine.api import ContainerSpec
from buildbench.engine.dockersdk import DockerEngine


class SlowAPI:
    """`wait` times out in steps (each shortened to keep the test quick) until `exits_at`."""

    def __init__(self, exits_at: float | None) -> None:
        self.exits_at, self.steps = exits_at, 0

    def wait(self, container: str, timeout: int) -> dict[str, Any]:
        self.steps += 1
        time.sleep(0.02)
        if self.exits_at is not None and time.perf_counter() >= self.exits_at:
            return {"StatusCode": 3}
        raise requests.exceptions.ReadTimeout("read timed out")


def _engine(api: SlowAPI) -> DockerEngine:
    engine = DockerEngine.__new__(DockerEngine)  # connected to nothing: the API is a fake
    engine.api = api  # type: ignore[assignment]
    engine._raise_if_gone = lambda exc: None  # type: ignore[method-assign]  # it answers
    return engine


def _lines(last_line: list[float], seconds: float) -> threading.Thread:
    """Progress: a stderr line every 0.05 s for `seconds`."""

    def write() -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            last_line[0] = time.perf_counter()
            time.sleep(0.05)

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def test_a_silent_container_times_out_from_its_start() -> None:
    start = time.perf_counter()
    found = _engine(SlowAPI(None))._wait("c", ContainerSpec([], timeout_seconds=0.2), [start])
    assert found is None and 0.2 <= time.perf_counter() - start < 1


def test_progress_does_not_move_a_timeout_that_counts_from_the_start() -> None:
    start = time.perf_counter()
    last_line = [start]
    writing = _lines(last_line, 0.6)
    found = _engine(SlowAPI(None))._wait("c", ContainerSpec([], timeout_seconds=0.2), last_line)
    took = time.perf_counter() - start
    writing.join()
    assert found is None and took < 0.5


def test_progress_moves_the_timeout_on_until_the_container_falls_silent() -> None:
    spec = ContainerSpec([], timeout_seconds=0.2, timeout_from_last_line=True)
    start = time.perf_counter()
    last_line = [start]
    writing = _lines(last_line, 0.6)  # three timeouts' worth of progress
    found = _engine(SlowAPI(None))._wait("c", spec, last_line)
    took = time.perf_counter() - start
    writing.join()
    assert found is None and took >= 0.6 + 0.2 - 0.06


def test_a_container_that_exits_while_reporting_gives_its_exit_code() -> None:
    spec = ContainerSpec([], timeout_seconds=0.2, timeout_from_last_line=True)
    start = time.perf_counter()
    last_line = [start]
    writing = _lines(last_line, 0.6)
    api = SlowAPI(exits_at=start + 0.5)
    assert _engine(api)._wait("c", spec, last_line) == 3
    writing.join()
    assert api.steps > 1
