"""The http kind's detail: an HTTP service measured under load."""

from __future__ import annotations

from dataclasses import dataclass, field

from buildbench.record.smoke import SmokeDetail


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
