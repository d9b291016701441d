"""The figures of a cell that reports, `compare` and `history` share, each with its raw samples.

Times are samples (build times, latencies, cold starts): judged statistically. Sizes are exact
for identical inputs: judged as byte budgets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from buildbench.analyze.served import level_at, level_quantiles, throughput
from buildbench.analyze.stats import summarize
from buildbench.record import CellRecord, Latency, Served, model_of

MetricKind = Literal["time", "size"]
# How a value reads: seconds, seconds shown in ms (latency), bytes (render.fmt.metric_value).
Unit = Literal["seconds", "ms", "bytes"]
Stage = Literal["build", "image", "smoke"]
# The concurrency levels of HTTP services that compare and history follow (configs pick theirs).
SERVED_LEVELS = (1, 2, 4, 8, 16, 32, 64, 128)


def build_seconds(record: CellRecord) -> list[float]:
    return list(record.build.seconds)


def latency(record: CellRecord, batch: str = "1") -> Latency | None:
    return model_of(record.smoke).latency.get(batch)


def latency_samples(record: CellRecord, batch: str = "1") -> list[float]:
    found = latency(record, batch)
    return list(found.samples) if found else []


def cold_start_samples(record: CellRecord) -> list[float]:
    return list(record.smoke.cold_start_seconds) if record.smoke else []


def image_size(record: CellRecord) -> list[float]:
    return [] if record.image is None else [float(record.image.size_bytes)]


def compressed_size(record: CellRecord) -> list[float]:
    found = record.image.compressed_size_bytes if record.image else None
    return [] if found is None else [float(found)]


def _served(record: CellRecord) -> Served | None:
    return record.smoke.of(Served) if record.smoke else None


def ready_samples(record: CellRecord) -> list[float]:
    """An HTTP service's time to ready (one per run)."""
    served = _served(record)
    return [] if served is None or served.ready_seconds is None else [served.ready_seconds]


def served_p95(concurrency: int) -> Callable[[CellRecord], list[float]]:
    """An HTTP service's p95 latency at this concurrency (one figure per run)."""

    def samples(record: CellRecord) -> list[float]:
        level = level_at(_served(record), concurrency)
        p95 = level_quantiles(level).p95 if level else None
        return [] if p95 is None else [p95]

    return samples


def served_seconds_per_answer(concurrency: int) -> Callable[[CellRecord], list[float]]:
    """1 / throughput at this concurrency (one figure per run): a time, so that more is worse
    as for every other metric."""

    def samples(record: CellRecord) -> list[float]:
        level = level_at(_served(record), concurrency)
        rate = throughput(level) if level else None
        return [1 / rate] if rate else []

    return samples


def median(samples: list[float]) -> float | None:
    return summarize(samples).median


@dataclass(frozen=True)
class Metric:
    name: str  # as people read it
    key: str  # as CSV/JSON columns name it
    kind: MetricKind
    samples: Callable[[CellRecord], list[float]]
    unit: Unit
    stage: Stage  # what it measures: what makes two records comparable, its default threshold

    def value(self, record: CellRecord) -> float | None:
        """The point figure: the median of the samples (a size has one)."""
        return median(self.samples(record))


METRICS: tuple[Metric, ...] = (
    Metric("build time", "build_seconds", "time", build_seconds, "seconds", "build"),
    Metric("image size", "image_size_bytes", "size", image_size, "bytes", "image"),
    Metric("compressed size", "compressed_size_bytes", "size", compressed_size, "bytes", "image"),
    Metric("p50 latency b=1", "latency_b1_seconds", "time", latency_samples, "ms", "smoke"),
    Metric("cold start", "cold_start_seconds", "time", cold_start_samples, "seconds", "smoke"),
    Metric("ready time", "ready_seconds", "time", ready_samples, "seconds", "smoke"),
    *(
        Metric(
            f"p95 latency c={c}", f"served_p95_c{c}_seconds", "time", served_p95(c), "ms", "smoke"
        )
        for c in SERVED_LEVELS
    ),
    *(
        Metric(
            f"time per answer c={c} (1/throughput)",
            f"served_c{c}_seconds_per_answer",
            "time",
            served_seconds_per_answer(c),
            "ms",
            "smoke",
        )
        for c in SERVED_LEVELS
    ),
)
METRIC_BY_KEY = {metric.key: metric for metric in METRICS}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def image_label(record: CellRecord) -> str:
    """The cell's image as tables show it: its name, and its framework if another."""
    if record.framework in (None, record.name):
        return record.name
    return f"{record.name} ({record.framework})"
