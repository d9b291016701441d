"""The figures of a cell that reports, `compare` and `history` share, each with its raw samples.

Times are samples (build times, latencies, cold starts): judged statistically. Sizes are exact
for identical inputs: judged as byte budgets. The build's and the image's are here; each kind
of smoke test adds its own (`SmokeDetail.metrics`, asked of every kind in `DETAILS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from buildbench.analyze.stats import latency_quantiles, summarize
from buildbench.record import DETAILS, CellRecord, Latency, SmokeMetric, model_of

MetricKind = Literal["time", "size"]
# How a value reads: seconds, seconds shown in ms (latency), bytes (render.fmt.metric_value).
Unit = Literal["seconds", "ms", "bytes"]
Stage = Literal["build", "image", "smoke"]


def build_seconds(record: CellRecord) -> list[float]:
    return list(record.build.seconds)


def latency(record: CellRecord, batch: str = "1") -> Latency | None:
    return model_of(record.smoke).latency.get(batch)


def image_size(record: CellRecord) -> list[float]:
    return [] if record.image is None else [float(record.image.size_bytes)]


def compressed_size(record: CellRecord) -> list[float]:
    found = record.image.compressed_size_bytes if record.image else None
    return [] if found is None else [float(found)]


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


def smoke_metric(declared: SmokeMetric) -> Metric:
    """A kind's metric, read from a cell's smoke result (none: no samples)."""

    def samples(record: CellRecord) -> list[float]:
        found = declared.samples(record.smoke) if record.smoke else []
        if declared.reduce == "p95":
            p95 = latency_quantiles(found).p95 if found else None
            return [] if p95 is None else [p95]
        return found

    return Metric(declared.name, declared.key, "time", samples, declared.unit, "smoke")


def _kinds_metrics() -> tuple[Metric, ...]:
    """Every kind's metrics, in the kinds' order; one a kind shares with another (cold start)
    once."""
    declared = {m.key: m for detail in DETAILS.values() for m in detail.metrics}
    return tuple(map(smoke_metric, declared.values()))


METRICS: tuple[Metric, ...] = (
    Metric("build time", "build_seconds", "time", build_seconds, "seconds", "build"),
    Metric("image size", "image_size_bytes", "size", image_size, "bytes", "image"),
    Metric("compressed size", "compressed_size_bytes", "size", compressed_size, "bytes", "image"),
    *_kinds_metrics(),
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
