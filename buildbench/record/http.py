"""The http kind's detail: an HTTP service measured under load."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from buildbench.record.model import OutputParity
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
class RateStep:
    """One arrival rate of the open-loop sweep: requests sent at times fixed in advance, each good
    answer's latency (seconds) from its *scheduled* time, so that the queue behind a stalled
    service counts (the coordinated-omission correction)."""

    rate: float  # requests per second scheduled
    samples: list[float]
    seconds: float  # the measured part, after its warm-up at the same rate
    warmup_seconds: float
    scheduled: int  # requests scheduled in the measured part
    # as a level's, and late: scheduled but not sent before the step's stop
    errors: dict[str, int] = field(default_factory=dict)
    # p95 over every scheduled request (a failed one infinitely slow) within the run's SLO
    within_slo: bool = False
    max_lag_seconds: float = 0.0  # the latest a request left after its scheduled time
    first_error: str | None = None


@dataclass(frozen=True)
class Batching:
    """A server's own batching as the cell ran it: off, or on with its largest batch and how long
    it waits to fill one. The cells measured with it off and on share `pair`, and the report
    sets their throughput and p95 side by side."""

    enabled: bool
    pair: str  # e.g. the server and variant: "torchserve/cpu"
    max_batch: int | None = None
    max_delay_ms: float | None = None
    # Why it was not measured on (a built-in server without batching, a model of fixed batch).
    unavailable: str | None = None


@dataclass(frozen=True)
class ServedAnswers:
    """A built-in server's answer (`--server`), checked against the host's reference outputs
    with the model smoke test's parity rules, output by output."""

    server: str  # e.g. "fastapi"
    encoding: str  # how the request was encoded, e.g. "JSON, tensors as base64"
    request_bytes: int  # the body sent with every request
    answer_bytes: int | None = None  # the first answer's body
    outputs: dict[str, OutputParity] = field(default_factory=dict)
    ok: bool = False  # every output within its tolerance
    note: str | None = None  # why the answer could not be checked (not decoded, not kept)


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
    slo_p95_seconds: float | None = None  # --slo-p95: the open-loop sweep's target
    rates: list[RateStep] = field(default_factory=list)  # the sweep's steps, in the order run
    batching: Batching | None = None  # None: the service's batching is not known
    answers: ServedAnswers | None = None  # a built-in server's answer, checked (`--server`)
    # A built-in server that batches: the same image run again with its batching on (this
    # run's `batching` says off), in a fresh container measured alike.
    batched: Served | None = None

    def identity(self) -> tuple[str, ...]:
        return (self.request,)

    def level(self, concurrency: int) -> LoadLevel | None:
        return next((lv for lv in self.levels if lv.concurrency == concurrency), None)

    def rate_at_slo(self) -> float | None:
        """The highest arrival rate whose p95 stayed within the SLO; None: none did, or no sweep."""
        return max((step.rate for step in self.rates if step.within_slo), default=None)

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


def _seconds_per_answer_at_slo(smoke: SmokeResult) -> list[float]:
    """1 / the rate at the SLO (one figure per run): a time, more is worse."""
    served = _served(smoke)
    rate = served.rate_at_slo() if served else None
    return [1 / rate] if rate else []


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
    SmokeMetric(
        "time per answer at the p95 SLO (1/rate)",
        "served_slo_seconds_per_answer",
        "ms",
        _seconds_per_answer_at_slo,
    ),
)
