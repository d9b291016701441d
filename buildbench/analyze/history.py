"""History: many runs of the same machines, in time order, per cell and metric, with the runs
where a metric shifted (E-divisive change points, `changepoints.py`).

Runs group by machine (the engine's host), order by start time. A cell's series holds one value
per run that measured it: the median of its samples for times, the exact bytes for sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from buildbench.analyze.changepoints import Shift, detect_shifts, newest_starts_worse_segment
from buildbench.analyze.metrics import METRICS, Metric
from buildbench.results import RunResults
from buildbench.status import Status


@dataclass(frozen=True)
class Point:
    run_id: str
    started_at: str
    value: float
    config_hash: str


@dataclass(frozen=True)
class Series:
    machine: str
    cell: str
    metric: Metric
    points: list[Point]
    shifts: list[Shift]
    # The newest run begins (or reveals) a worse segment: what --fail-on-regression fails on.
    regression: Shift | None

    @property
    def values(self) -> list[float]:
        return [point.value for point in self.points]

    def run_of(self, shift: Shift) -> Point:
        return self.points[shift.index]


def by_machine(runs: Sequence[RunResults]) -> dict[str, list[RunResults]]:
    """Each machine's runs, oldest first."""
    found: dict[str, list[RunResults]] = {}
    for run in sorted(runs, key=lambda run: run.info.started_at):
        found.setdefault(run.info.machine, []).append(run)
    return found


def history(runs: Sequence[RunResults], *, min_size: int = 2) -> list[Series]:
    """Every (machine, cell, metric) series with at least one value, and its shifts."""
    found = []
    for machine, machine_runs in by_machine(runs).items():
        cells = dict.fromkeys(r.key for run in machine_runs for r in run.records)
        for cell in cells:
            for metric in METRICS:
                points = _points(machine_runs, cell, metric)
                if points:
                    found.append(_series(machine, cell, metric, points, min_size))
    return found


def _points(runs: Sequence[RunResults], cell: str, metric: Metric) -> list[Point]:
    points = []
    for run in runs:
        for record in run.records:
            if record.key != cell or record.status != Status.OK:
                continue
            value = metric.value(record)
            if value is not None:
                info = run.info
                points.append(Point(info.run_id, info.started_at, value, record.config_hash))
    return points


def _series(machine: str, cell: str, metric: Metric, points: list[Point], min_size: int) -> Series:
    values = [point.value for point in points]
    shifts = detect_shifts(values, min_size=min_size)
    regression = newest_starts_worse_segment(values, shifts, min_size=min_size)
    return Series(machine, cell, metric, points, shifts, regression)


def regressions(series: Sequence[Series]) -> list[Series]:
    return [s for s in series if s.regression is not None]
