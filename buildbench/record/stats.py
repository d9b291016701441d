"""Statistics of raw samples, as `buildbench.analyze.stats` computes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CiMethod = Literal["order-statistic", "min-max"]


@dataclass(frozen=True)
class Summary:
    """Location and spread of raw samples; the interval is the median's."""

    n: int
    median: float | None = None
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    stddev: float | None = None  # sample standard deviation; None below 2 samples
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float | None = None  # the coverage achieved, which may be below 95%
    ci_method: CiMethod | None = None


@dataclass(frozen=True)
class Interval:
    """An order-statistic confidence interval and the coverage it actually achieves."""

    low: float
    high: float
    level: float


@dataclass(frozen=True)
class Quantiles:
    """p50, p95 and p99 of latency samples, each with its order-statistic interval at 95%.

    Tail intervals need many samples: p95 reaches 95% coverage from 71 samples on, p99 from
    348; below that the interval runs to the maximum and `level` says how much less it covers
    (p99 of 30 samples: [x(28), x(30)] at 26%).
    """

    n: int
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    p50_ci: Interval | None = None
    p95_ci: Interval | None = None
    p99_ci: Interval | None = None
