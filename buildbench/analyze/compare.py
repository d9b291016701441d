"""Compare two runs cell by cell, the asv way: ratio = current / baseline, a mark per metric,
and an exit code CI can gate on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tabulate import tabulate

from buildbench import fmt
from buildbench import record as status
from buildbench.record import CellRecord, RunInfo
from buildbench.report import build_median, cold_start, latency, markdown_table, ratio

EXIT_REGRESSION = 1  # anything worse or newly failing; usage errors exit 2 (UsageError)
FORMATS = ("text", "markdown")

WORSE, BETTER, SAME, FAILING, FIXED, NOT_COMPARABLE, MISSING = "+", "-", " ", "!", "*", "x", "?"
LEGEND = (
    "marks: + worse, - better, ! newly failing, * fixed, x not comparable (Dockerfile, "
    "build-args or builder changed), ? missing on one side"
)
HEADERS = ["", "cell", "metric", "baseline", "current", "ratio"]


@dataclass(frozen=True)
class Metric:
    name: str
    value: Callable[[CellRecord], float | None]
    show: Callable[[float | None], str]
    kind: Literal["time", "size"]  # which threshold applies


METRICS = (
    Metric("build time", build_median, fmt.seconds, "time"),
    Metric("image size", lambda r: r.image_size_bytes, fmt.size, "size"),
    Metric("compressed size", lambda r: r.compressed_size_bytes, fmt.size, "size"),
    Metric("p50 latency b=1", latency, fmt.ms, "time"),
    Metric("cold start", cold_start, fmt.seconds, "time"),
)


@dataclass(frozen=True)
class Thresholds:
    slowdown: float = 1.25  # build time, latency and cold start
    growth: float = 1.05  # image and compressed sizes

    def factor(self, metric: Metric) -> float:
        return self.slowdown if metric.kind == "time" else self.growth


@dataclass(frozen=True)
class Row:
    mark: str
    cell: str
    metric: str
    baseline: str
    current: str
    ratio: float | None = None

    @property
    def regressed(self) -> bool:
        return self.mark in (WORSE, FAILING)


def compare(
    baseline: list[CellRecord], current: list[CellRecord], thresholds: Thresholds
) -> list[Row]:
    """Rows for every cell of either run, matched by name/variant, baseline's order first."""
    before = {r.key: r for r in baseline}
    after = {r.key: r for r in current}
    keys = dict.fromkeys([*before, *after])
    return [row for key in keys for row in _cell_rows(before.get(key), after.get(key), thresholds)]


def _cell_rows(
    before: CellRecord | None, after: CellRecord | None, thresholds: Thresholds
) -> list[Row]:
    if before is None or after is None:
        return [_missing(before, after)]
    ok_before, ok_after = before.status == status.OK, after.status == status.OK
    if ok_before != ok_after or not ok_before:
        mark = FAILING if ok_before else FIXED if ok_after else SAME
        return [Row(mark, after.key, "status", before.status, after.status)]
    comparable = _comparable(before, after)
    rows = [_metric_row(before, after, m, thresholds, comparable) for m in METRICS]
    return [row for row in rows if row is not None]


def _comparable(before: CellRecord, after: CellRecord) -> bool:
    """Built from the same Dockerfile and build-args, by the same builder: the classic builder
    and BuildKit time and size one Dockerfile differently (see the report's builder table)."""
    return before.config_hash == after.config_hash and before.builder == after.builder


def _missing(before: CellRecord | None, after: CellRecord | None) -> Row:
    present = before or after
    assert present is not None
    return Row(
        MISSING,
        present.key,
        "cell",
        "-" if before is None else before.status,
        "-" if after is None else after.status,
    )


def _metric_row(
    before: CellRecord,
    after: CellRecord,
    metric: Metric,
    thresholds: Thresholds,
    comparable: bool,
) -> Row | None:
    old, new = metric.value(before), metric.value(after)
    if old is None and new is None:
        return None  # not measured in either run (no smoke test, no compressed size)
    change = ratio(new, old)
    if not comparable:
        mark = NOT_COMPARABLE
    elif change is None:
        mark = MISSING
    else:
        mark = _judge(change, thresholds.factor(metric))
    return Row(mark, after.key, metric.name, metric.show(old), metric.show(new), change)


def _judge(change: float, factor: float) -> str:
    if change > factor:
        return WORSE
    return BETTER if change < 1 / factor else SAME


def regressions(rows: list[Row]) -> list[Row]:
    return [row for row in rows if row.regressed]


def verdict(rows: list[Row]) -> str:
    worse = sum(row.mark == WORSE for row in rows)
    failing = sum(row.mark == FAILING for row in rows)
    if worse or failing:
        return f"REGRESSION: {worse} metric(s) worse, {failing} cell(s) newly failing"
    return "no regressions"


def render(
    rows: list[Row],
    runs: tuple[RunInfo, RunInfo],
    thresholds: Thresholds,
    format_: str = "text",
) -> str:
    """The comparison as an aligned text table, or Markdown for a CI job summary."""
    table = [
        [row.mark, row.cell, row.metric, row.baseline, row.current, fmt.ratio(row.ratio)]
        for row in rows
    ]
    before, after = runs
    limits = (
        f"worse means ratio > {thresholds.slowdown:g} for times, > {thresholds.growth:g} for sizes"
    )
    runs_line = [
        f"baseline: {before.run_id} on {before.host} ({before.started_at})",
        f"current:  {after.run_id} on {after.host} ({after.started_at})",
    ]
    if format_ == "markdown":
        return _markdown(table, runs_line, limits, verdict(rows))
    body = tabulate(table, headers=HEADERS, tablefmt="simple", disable_numparse=True)
    return "\n".join([*runs_line, limits, "", body, "", LEGEND, verdict(rows)]) + "\n"


def _markdown(table: list[list[str]], runs_line: list[str], limits: str, outcome: str) -> str:
    body = markdown_table(table, HEADERS)
    head = "\n".join(f"- {line}" for line in [*runs_line, limits])
    return f"## buildbench compare: {outcome}\n\n{head}\n\n{body}\n\n{LEGEND}.\n"
