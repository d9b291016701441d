"""Compare runs cell by cell, the asv way: ratio = current / baseline, a mark per metric, and
an exit code CI can gate on.

A time counts as changed only when its ratio passes the threshold *and* the raw samples say
the change is real (`stats.significance`: Mann-Whitney U with three or more samples a side,
else ranges that do not overlap); beyond the threshold but not significant is `~`. Sizes are
exact for identical inputs: they are byte budgets, judged by the threshold alone. The baseline
may be several runs of the same machine (its recent history): their samples are pooled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from buildbench.analyze.metrics import METRICS, Metric, median, ratio
from buildbench.analyze.stats import significance
from buildbench.record import CellRecord, RunInfo
from buildbench.results import RunResults
from buildbench.status import Status

EXIT_REGRESSION = 1  # anything worse or newly failing; usage errors exit 2 (UsageError)
FORMATS = ("text", "markdown")

WORSE, BETTER, SAME, NOISE = "+", "-", " ", "~"
FAILING, FIXED, NOT_COMPARABLE, MISSING = "!", "*", "x", "?"
LEGEND = (
    "marks: + worse, - better, ~ beyond the threshold but not significant, ! newly failing, "
    "* fixed, x not comparable (Dockerfile, build-args, builder or wheel mode changed), "
    "? missing on one side"
)


@dataclass(frozen=True)
class Thresholds:
    slowdown: float = 1.25  # build time, latency and cold start
    growth: float = 1.05  # image and compressed sizes
    alpha: float = 0.05  # significance level of the test on the samples

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
    evidence: str = ""  # how significance was decided, e.g. "p=0.004 (Mann-Whitney, 5 vs 5)"

    @property
    def regressed(self) -> bool:
        return self.mark in (WORSE, FAILING)


def comparable(before: CellRecord, after: CellRecord, metric: Metric | None = None) -> bool:
    """Built from the same Dockerfile and build-args by the same builder (else every figure
    measures something else) and, for build time, with the wheels fetched the same way
    (--prefetch leaves the index's bandwidth out)."""
    same = before.config_hash == after.config_hash and before.builder == after.builder
    if metric is not None and metric.key == "build_seconds":
        return same and before.build.mode == after.build.mode
    return same


def compare(
    baseline: Sequence[RunResults], current: RunResults, thresholds: Thresholds
) -> list[Row]:
    """Rows for every cell of either side, matched by name/variant, baseline's order first.

    With several baseline runs (newest last), a cell's baseline is every run whose cell is
    comparable with the newest of them: samples pooled, sizes from the newest.
    """
    history: dict[str, list[CellRecord]] = {}
    for run in baseline:
        for record in run.records:
            history.setdefault(record.key, []).append(record)
    after = {r.key: r for r in current.records}
    keys = dict.fromkeys([*history, *after])
    return [
        row for key in keys for row in _cell_rows(history.get(key, []), after.get(key), thresholds)
    ]


def _cell_rows(
    history: list[CellRecord], after: CellRecord | None, thresholds: Thresholds
) -> list[Row]:
    before = history[-1] if history else None
    if before is None or after is None:
        return [_missing(before, after)]
    ok_before, ok_after = before.status == Status.OK, after.status == Status.OK
    if ok_before != ok_after or not ok_before:
        mark = FAILING if ok_before else FIXED if ok_after else SAME
        return [Row(mark, after.key, "status", before.status.value, after.status.value)]
    rows = []
    for metric in METRICS:
        pooled = [r for r in history if r.status == Status.OK and comparable(r, before, metric)]
        same = comparable(before, after, metric)
        rows.append(_metric_row(pooled, after, metric, thresholds, same))
    return [row for row in rows if row is not None]


def _missing(before: CellRecord | None, after: CellRecord | None) -> Row:
    present = before or after
    assert present is not None
    return Row(
        MISSING,
        present.key,
        "cell",
        "-" if before is None else before.status.value,
        "-" if after is None else after.status.value,
    )


def _metric_row(
    history: list[CellRecord],
    after: CellRecord,
    metric: Metric,
    thresholds: Thresholds,
    same_config: bool,
) -> Row | None:
    newest = history[-1]
    old_samples = (
        [s for r in history for s in metric.samples(r)]
        if metric.kind == "time"
        else metric.samples(newest)
    )
    new_samples = metric.samples(after)
    old, new = median(old_samples), median(new_samples)
    if old is None and new is None:
        return None  # not measured on either side (no smoke test, no compressed size)
    change = ratio(new, old)
    mark, evidence = SAME, ""
    if not same_config:
        mark = NOT_COMPARABLE
    elif change is None:
        mark = MISSING
    elif metric.kind == "size":
        mark, evidence = _judge(change, thresholds.factor(metric), True), "exact"
    else:
        test = significance(old_samples, new_samples, thresholds.alpha)
        evidence = _evidence(test.method, test.p_value, len(old_samples), len(new_samples))
        mark = _judge(change, thresholds.factor(metric), test.significant)
    return Row(mark, after.key, metric.name, metric.show(old), metric.show(new), change, evidence)


def _judge(change: float, factor: float, significant: bool) -> str:
    if change > factor or change < 1 / factor:
        if not significant:
            return NOISE
        return WORSE if change > factor else BETTER
    return SAME


def _evidence(method: str, p_value: float | None, n_old: int, n_new: int) -> str:
    counts = f"{n_old} vs {n_new}"
    if p_value is not None:
        shown = "p<0.001" if p_value < 0.001 else f"p={p_value:.3f}"
        return f"{shown} ({counts})"
    return f"{method} ({counts})"


def regressions(rows: list[Row]) -> list[Row]:
    return [row for row in rows if row.regressed]


def verdict(rows: list[Row]) -> str:
    worse = sum(row.mark == WORSE for row in rows)
    failing = sum(row.mark == FAILING for row in rows)
    if worse or failing:
        return f"REGRESSION: {worse} metric(s) worse, {failing} cell(s) newly failing"
    noise = sum(row.mark == NOISE for row in rows)
    return "no regressions" + (
        f" ({noise} change(s) beyond the threshold, not significant)" if noise else ""
    )


# What, when it differs between two runs, makes their numbers harder to compare.
ENVIRONMENT: tuple[tuple[str, Callable[[RunInfo], object]], ...] = (
    ("engine version", lambda i: i.engine.server_version),
    ("CPU", lambda i: i.engine.cpu_model or i.cpu),
    ("storage driver", lambda i: i.engine.storage_driver),
    ("builder", lambda i: i.builder),
    ("base image", lambda i: i.base_image_id or i.base_image),
)


def environment_warnings(before: RunInfo, after: RunInfo) -> list[str]:
    found = []
    for name, value in ENVIRONMENT:
        old, new = value(before), value(after)
        if old != new:
            found.append(f"{name} differs: {old} (baseline) vs {new} (current)")
    return found
