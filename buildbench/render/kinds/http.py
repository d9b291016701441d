"""The http kind's report: the "Served" section and chart, HTTP services measured under load,
one row per cell, then one per cell and concurrency level."""

from __future__ import annotations

from collections.abc import Sequence

from buildbench.analyze.course import Entry
from buildbench.analyze.served import KNEE_FACTOR, knee, level_quantiles, throughput
from buildbench.record import Quantiles, Served
from buildbench.render import charts, fmt
from buildbench.render.kinds.base import ChartSpec, KindReport
from buildbench.render.mdparts import markdown_table
from buildbench.results import RunResults


def _served(cells: Sequence[Entry]) -> list[tuple[Entry, Served]]:
    found = [(e, e.record.smoke.of(Served) if e.record.smoke else None) for e in cells]
    return [(e, served) for e, served in found if served is not None]


def _label(entry: Entry, merged: bool) -> str:
    return f"{entry.record.key} @ {entry.machine}" if merged else entry.record.key


def _quantile(q: Quantiles, name: str) -> str:
    value, ci = getattr(q, name), getattr(q, f"{name}_ci")
    return fmt.interval(value, ci.low if ci else None, ci.high if ci else None, "ms")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{fmt.number(value)}/s"


def served_section(cells: Sequence[Entry], merged: bool) -> str:
    """Ready time, resources and knee per service; latency and throughput per level."""
    found = _served(cells)
    if not found:
        return ""
    services = [
        [
            _label(e, merged),
            e.record.smoke.status.value if e.record.smoke else "-",
            served.request,
            fmt.seconds(served.ready_seconds),
            fmt.seconds(served.first_response_seconds),
            fmt.size(served.peak_memory_bytes),
            fmt.seconds(served.cpu_seconds),
            "-" if (k := knee(served)) is None else f"c={k}",
        ]
        for e, served in found
    ]
    levels = []
    for e, served in found:
        for level in served.levels:
            q = level_quantiles(level)
            errors = ", ".join(f"{n} {kind}" for kind, n in level.errors.items() if n)
            levels.append(
                [
                    _label(e, merged),
                    level.concurrency,
                    _quantile(q, "p50"),
                    _quantile(q, "p95"),
                    _quantile(q, "p99"),
                    _rate(throughput(level)),
                    f"{q.n} / {level.requests}",
                    errors or "none",
                ]
            )
    note = (
        "Ready: from the service container's start request until its ready path answers a 2xx "
        "(or its port accepts); first answer: until the first good answer to the request (the "
        "service's cold start). Per concurrency level, after a warm-up: latency of every good "
        "answer, request sent to body read, p50 / p95 / p99 with 95% intervals; throughput: "
        "good answers per second; good / sent. Knee: the highest concurrency whose p95 stays "
        f"within {KNEE_FACTOR:g}x the p95 at the lowest concurrency. Peak memory and CPU: the "
        "service container's, from the engine's stats. The load generator shares the engine's "
        "CPUs with the service."
    )
    return (
        "## Served\n\n"
        + markdown_table(
            services,
            ["cell", "smoke", "request", "ready", "first answer", "peak memory", "CPU", "knee"],
        )
        + "\n\n"
        + markdown_table(
            levels,
            ["cell", "concurrency", "p50", "p95", "p99", "throughput", "good / sent", "errors"],
        )
        + "\n\n"
        + note
    )


def served_charts(cells: Sequence[Entry], merged: bool) -> list[ChartSpec]:
    """Throughput and p95 against concurrency, a line per cell; none without a service."""
    curves = [
        charts.Curve(
            _label(e, merged),
            [lv.concurrency for lv in served.levels],
            [throughput(lv) for lv in served.levels],
            [_ms(level_quantiles(lv).p95) for lv in served.levels],
        )
        for e, served in _served(cells)
        if served.levels
    ]
    if not curves:
        return []
    return [
        (
            "Served: throughput and p95 against concurrency",
            "served",
            lambda path: charts.served_curves(path, curves),
        )
    ]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _section(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    return served_section(cells, len(runs) > 1)


REPORT = KindReport(results=_section, later_charts=served_charts)
