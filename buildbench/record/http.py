"""The http kind's detail: an HTTP service measured under load."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from buildbench.record.smoke import COLD_START, SmokeDetail, SmokeMetric, SmokeResult

# The concurrency levels compare and history follow (configs pick theirs).
SERVED_LEVELS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class LoadLevel:
    """One concurrency level of an HTTP service's load test: every good response's latency
    (seconds, from the request sent to the body read) and the errors by kind."""

    concurrency: int
    samples: list[float]
    seconds: float  # how long the measured part ran, after its warm-up
    warmup_seconds: float
    requests: int  # sent in the measured part, good or not
    # status (another status), body (the expected text missing), timeout, connection
    errors: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None  # the first bad answer: its kind, status and body's start


@dataclass(frozen=True)
class Served(SmokeDetail):
    """An HTTP service measured under load (the `http` smoke test): its cold start as a
    service, each concurrency level, and what it used."""

    request: str  # e.g. "POST /predict on port 8000"
    # From the service container's start request to its first 2xx on the ready path (or the
    # port accepting connections), and to the first good answer to the request.
    ready_seconds: float | None = None
    first_response_seconds: float | None = None
    levels: list[LoadLevel] = field(default_factory=list)
    peak_memory_bytes: int | None = None  # the service container's, from the engine's stats
    cpu_seconds: float | None = None  # the service's CPU time, start-up and load together
    exit_code: int | None = None  # when the service exited before the load was done
    user: str | None = None  # who the service ran as

    def identity(self) -> tuple[str, ...]:
        return (self.request,)

    def level(self, concurrency: int) -> LoadLevel | None:
        return next((lv for lv in self.levels if lv.concurrency == concurrency), None)

    metrics: ClassVar[tuple[SmokeMetric, ...]] = ()  # below: they read the class


def _served(smoke: SmokeResult) -> Served | None:
    return smoke.of(Served)


def _ready(smoke: SmokeResult) -> list[float]:
    """An HTTP service's time to ready (one per run)."""
    served = _served(smoke)
    return [] if served is None or served.ready_seconds is None else [served.ready_seconds]


def _level_samples(concurrency: int) -> Callable[[SmokeResult], list[float]]:
    def samples(smoke: SmokeResult) -> list[float]:
        served = _served(smoke)
        level = served.level(concurrency) if served else None
        return list(level.samples) if level else []

    return samples


def _seconds_per_answer(concurrency: int) -> Callable[[SmokeResult], list[float]]:
    """1 / throughput at this concurrency (one figure per run): a time, so that more is worse
    as for every other metric."""

    def samples(smoke: SmokeResult) -> list[float]:
        served = _served(smoke)
        level = served.level(concurrency) if served else None
        if level is None or level.seconds <= 0 or not level.samples:
            return []
        return [1 / (len(level.samples) / level.seconds)]

    return samples


Served.metrics = (
    COLD_START,
    SmokeMetric("ready time", "ready_seconds", "seconds", _ready),
    *(
        SmokeMetric(
            f"p95 latency c={c}", f"served_p95_c{c}_seconds", "ms", _level_samples(c), "p95"
        )
        for c in SERVED_LEVELS
    ),
    *(
        SmokeMetric(
            f"time per answer c={c} (1/throughput)",
            f"served_c{c}_seconds_per_answer",
            "ms",
            _seconds_per_answer(c),
        )
        for c in SERVED_LEVELS
    ),
)
