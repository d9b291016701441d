"""The figures derived from an HTTP service's load test (the http kind's detail, `Served`): latency
quantiles and throughput per concurrency level, and the knee; per arrival rate of the open-loop
sweep, the same from each request's scheduled time."""

from __future__ import annotations

from buildbench.analyze.stats import latency_quantiles
from buildbench.record import LoadLevel, Quantiles, RateStep, Served

KNEE_FACTOR = 2.0  # the knee: the highest concurrency whose p95 stays within this of the base


def level_quantiles(level: LoadLevel) -> Quantiles:
    return latency_quantiles(level.samples)


def throughput(level: LoadLevel) -> float | None:
    """Good responses per second of the measured part."""
    return len(level.samples) / level.seconds if level.seconds > 0 else None


def level_at(served: Served | None, concurrency: int) -> LoadLevel | None:
    return served.level(concurrency) if served else None


def knee(served: Served) -> int | None:
    """The highest concurrency whose p95 stays within KNEE_FACTOR of the p95 at the lowest
    concurrency measured (1, as configs usually start); None without that base level. Levels
    past the first that exceeds it do not count: the service has already saturated."""
    levels = sorted((lv for lv in served.levels if lv.samples), key=lambda lv: lv.concurrency)
    if not levels:
        return None
    base = level_quantiles(levels[0]).p95
    found = None
    for level in levels:
        p95 = level_quantiles(level).p95
        if base is None or p95 is None or p95 > KNEE_FACTOR * base:
            break
        found = level.concurrency
    return found


def rate_quantiles(step: RateStep) -> Quantiles:
    """The good answers' latencies from their scheduled times, with their intervals."""
    return latency_quantiles(step.samples)


def rate_throughput(step: RateStep) -> float | None:
    """Good answers per second of a step's measured part (its rate, when all were good)."""
    return len(step.samples) / step.seconds if step.seconds > 0 else None
