"""History: many runs of the same machines, in time order, per cell and metric, with the runs
where a metric shifted (E-divisive change points, `changepoints.py`), judged as `compare` judges.

Runs group by machine (the engine's host), order by start time. A cell's series holds one value
per run that measured it: the median of its samples for times, the exact bytes for sizes.

- A series restarts where `compare.differences` says the inputs changed (Dockerfile or
  build-args, builder, base image, smoke test, wheel mode): the change is labelled as what it
  is, and shifts are searched within each stretch of comparable runs only.
- A run whose timed phase shared a busy machine (others used over `interference.BUSY_SHARE` of the
  engine host's CPU) is left out of that series: it is noise, neither a shift nor a verdict.
  A series every run of which was busy is still listed, with no value and its runs named.
- The gate (`--fail-on-regression`) judges each machine's newest run. In each series the newest
  shift of the newest stretch, if worse and young (`changepoints.newest_worse_shift`), is a
  regression when (1) its effect, median after / median before, passes the threshold: the
  A/A spread of the runs before it (`compare.time_threshold`: e to the power of two standard
  deviations of their log values, outlier runs left out, at least the minimum effect; the
  default below 5 runs), the growth budget for sizes; (2) the runs after it differ from the
  runs before (`runlevel.runs_p_value`: a prediction test robust to an outlier run among those
  before, as `compare`'s), with the false discovery rate over every series the run judges held
  to `Thresholds.fdr` (Benjamini-Hochberg: on a quiet run, the chance that it fails); and
  (3) the gate did not already fail on it at the run before: it fails once, on the run that
  reveals it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise

from buildbench.analyze.changepoints import Shift, detect_shifts, newest_worse_shift
from buildbench.analyze.compare import Thresholds, differences, time_threshold
from buildbench.analyze.interference import BUSY_SHARE, others_share
from buildbench.analyze.metrics import METRICS, Metric
from buildbench.analyze.runlevel import (
    NO_PRIOR,
    Prior,
    false_discovery,
    run_prior,
    runs_p_value,
)
from buildbench.record import CellRecord
from buildbench.results import RunResults
from buildbench.status import Status

MIN_SIZE = 2  # runs a segment: one slow run is an outlier, not a new level
MAX_AGE = 6  # a shift found later than this many runs after it is no news of the newest run


@dataclass(frozen=True)
class Point:
    run_id: str
    started_at: str
    value: float
    config_hash: str


@dataclass(frozen=True)
class Restart:
    """Run `index` is the first whose inputs differ from the run before it: not a shift."""

    index: int
    changed: tuple[str, ...]  # what differs, as `compare.differences` names it


@dataclass(frozen=True)
class Verdict:
    """The gate's look at a series' newest shift (the newest run's news, if any)."""

    shift: Shift
    threshold: float
    p_value: float | None
    effect: bool  # the shift's ratio passes the threshold
    significant: bool = False  # after the false discovery rate control over all series


@dataclass(frozen=True)
class Series:
    machine: str
    cell: str
    metric: Metric
    points: list[Point]
    shifts: list[Shift]
    restarts: list[Restart]
    verdict: Verdict | None = None
    # The newest run begins (or reveals) a worse segment: what --fail-on-regression fails on.
    regression: Shift | None = None
    # Runs left out: others used over BUSY_SHARE of the engine host's CPU in this phase.
    busy: list[str] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [point.value for point in self.points]

    def run_of(self, shift: Shift | Restart) -> Point:
        return self.points[shift.index]


def by_machine(runs: Sequence[RunResults]) -> dict[str, list[RunResults]]:
    """Each machine's runs, oldest first."""
    found: dict[str, list[RunResults]] = {}
    for run in sorted(runs, key=lambda run: run.info.started_at):
        found.setdefault(run.info.machine, []).append(run)
    return found


def history(
    runs: Sequence[RunResults], thresholds: Thresholds | None = None, *, min_size: int = MIN_SIZE
) -> list[Series]:
    """Every (machine, cell, metric) series with at least one value or run left out as busy
    (none then, when every run was), its shifts and restarts, and the gate's verdict on each
    machine's newest run."""
    thresholds = thresholds or Thresholds()
    found = []
    for machine, machine_runs in by_machine(runs).items():
        cells = dict.fromkeys(r.key for run in machine_runs for r in run.records)
        raw = [
            (cell, metric, _points(machine_runs, cell, metric))
            for cell in cells
            for metric in METRICS
        ]
        # A series whose every run was busy keeps its row, with no point: its runs are named.
        raw = [(c, m, points) for c, m, points in raw if points or _busy(machine_runs, c, m)]
        busy = [_busy(machine_runs, cell, metric) for cell, metric, _ in raw]
        newest = machine_runs[-1].info.run_id
        previous = machine_runs[-2].info.run_id if len(machine_runs) > 1 else None
        now = _gate([p for _, _, p in raw], [m for _, m, _ in raw], newest, thresholds, min_size)
        before = _gate(
            [[x for x in p if x[0].run_id != newest] for _, _, p in raw],
            [m for _, m, _ in raw],
            previous,
            thresholds,
            min_size,
        )
        for (cell, metric, points), verdict, earlier, left_out in zip(
            raw, now, before, busy, strict=True
        ):
            series = _series(machine, cell, metric, points, verdict, earlier, min_size)
            found.append(replace(series, busy=left_out))
    return found


_Entry = tuple[Point, CellRecord]


def _points(runs: Sequence[RunResults], cell: str, metric: Metric) -> list[_Entry]:
    """The series' runs; a run whose phase shared a busy machine is left out (`_busy`)."""
    points = []
    for run in runs:
        for record in run.records:
            if record.key != cell or record.status != Status.OK or _is_busy(record, metric):
                continue
            value = metric.value(record)
            if value is not None:
                info = run.info
                point = Point(info.run_id, info.started_at, value, record.config_hash)
                points.append((point, record))
    return points


def _is_busy(record: CellRecord, metric: Metric) -> bool:
    share = others_share(record, metric)
    return share is not None and share > BUSY_SHARE


def _busy(runs: Sequence[RunResults], cell: str, metric: Metric) -> list[str]:
    return [
        run.info.run_id
        for run in runs
        for record in run.records
        if record.key == cell and record.status == Status.OK and _is_busy(record, metric)
    ]


def _restarts(entries: Sequence[_Entry], metric: Metric) -> list[Restart]:
    found = []
    for index in range(1, len(entries)):
        changed = differences(entries[index - 1][1], entries[index][1], metric)
        if changed:
            found.append(Restart(index, tuple(changed)))
    return found


def _detect(values: list[float], restarts: list[Restart], min_size: int) -> list[Shift]:
    """Shifts within each stretch of comparable runs, indexed in the whole series."""
    bounds = [0, *(r.index for r in restarts), len(values)]
    found = []
    for start, end in pairwise(bounds):
        for shift in detect_shifts(values[start:end], min_size=min_size):
            found.append(Shift(start + shift.index, shift.before, shift.after, shift.ratio))
    return found


@dataclass(frozen=True)
class _Candidate:
    """A stretch's newest shift if worse and young (else None), and the runs at the level
    before it (with no candidate: the runs since the stretch's newest shift)."""

    shift: Shift | None
    before: list[float]
    after: list[float]


def _candidate(values: Sequence[float], min_size: int) -> _Candidate:
    shifts = detect_shifts(values, min_size=min_size)
    shift = newest_worse_shift(len(values), shifts, min_size=min_size, max_age=MAX_AGE)
    if shift is None:
        return _Candidate(None, list(values[shifts[-1].index if shifts else 0 :]), [])
    earlier = [s.index for s in shifts if s.index < shift.index]
    start = earlier[-1] if earlier else 0
    return _Candidate(shift, list(values[start : shift.index]), list(values[shift.index :]))


def _verdict(
    found: _Candidate, metric: Metric, thresholds: Thresholds, prior: Prior = NO_PRIOR
) -> Verdict | None:
    if found.shift is None:
        return None
    if metric.kind == "size":
        threshold = thresholds.growth
    else:
        default, least = thresholds.default(metric), thresholds.min_effect
        threshold = time_threshold(found.before, default, least, prior)
    p_value = runs_p_value(found.before, found.after, "greater", prior)
    return Verdict(found.shift, threshold, p_value, found.shift.ratio > threshold)


def judge_all(
    stretches: Sequence[Sequence[float]],
    metrics: Sequence[Metric],
    thresholds: Thresholds,
    min_size: int = MIN_SIZE,
) -> list[Verdict | None]:
    """The newest shift of each stretch of comparable runs one run judges, if worse and young,
    with its effect and p-value, then `discover` over all of them.
    As in `compare`, each time series' variance is moderated by a prior fitted to all of them
    (`runlevel.run_prior`, on the runs at each series' level before its candidate shift)."""
    found = [_candidate(values, min_size) for values in stretches]
    prior = run_prior(
        [c.before for c, metric in zip(found, metrics, strict=True) if metric.kind == "time"]
    )
    verdicts = [
        _verdict(c, metric, thresholds, prior) for c, metric in zip(found, metrics, strict=True)
    ]
    return discover(verdicts, thresholds.fdr)


def discover(verdicts: Sequence[Verdict | None], alpha: float) -> list[Verdict | None]:
    """`verdicts` of every series one run judges, each `significant` when its p-value is a
    discovery of Benjamini-Hochberg over all of them (a series without a candidate counts, p 1)."""
    p_values = [1.0 if v is None or v.p_value is None else v.p_value for v in verdicts]
    return [
        None if v is None else replace(v, significant=found)
        for v, found in zip(verdicts, false_discovery(p_values, alpha), strict=True)
    ]


def fails(verdict: Verdict | None) -> bool:
    return verdict is not None and verdict.effect and verdict.significant


def news(now: Verdict | None, before: Verdict | None, min_size: int = MIN_SIZE) -> bool:
    """The gate fails on `now` unless it already failed on the same shift at the run before."""
    if not fails(now):
        return False
    assert now is not None
    return not (
        fails(before)
        and before is not None
        and abs(before.shift.index - now.shift.index) <= min_size
    )


def _newest_stretch(entries: Sequence[_Entry], metric: Metric) -> tuple[int, list[float]]:
    """Where the series' newest stretch of comparable runs starts, and its values."""
    restarts = _restarts(entries, metric)
    start = restarts[-1].index if restarts else 0
    return start, [point.value for point, _ in entries][start:]


def _gate(
    series: Sequence[Sequence[_Entry]],
    metrics: Sequence[Metric],
    run_id: str | None,
    thresholds: Thresholds,
    min_size: int,
) -> list[Verdict | None]:
    """The gate's verdict on every series that run `run_id` measured (None for the others)."""
    judged = [i for i, entries in enumerate(series) if entries and entries[-1][0].run_id == run_id]
    stretches = [_newest_stretch(series[i], metrics[i]) for i in judged]
    verdicts = judge_all(
        [values for _, values in stretches], [metrics[i] for i in judged], thresholds, min_size
    )
    found: list[Verdict | None] = [None] * len(series)
    for i, (start, _), verdict in zip(judged, stretches, verdicts, strict=True):
        if verdict is not None:  # its shift indexed in the whole series
            shift = verdict.shift
            found[i] = replace(verdict, shift=replace(shift, index=start + shift.index))
    return found


def _series(
    machine: str,
    cell: str,
    metric: Metric,
    entries: list[_Entry],
    verdict: Verdict | None,
    earlier: Verdict | None,
    min_size: int,
) -> Series:
    values = [point.value for point, _ in entries]
    restarts = _restarts(entries, metric)
    shifts = _detect(values, restarts, min_size)
    regression = verdict.shift if verdict is not None and news(verdict, earlier, min_size) else None
    points = [point for point, _ in entries]
    return Series(machine, cell, metric, points, shifts, restarts, verdict, regression)


def regressions(series: Sequence[Series]) -> list[Series]:
    return [s for s in series if s.regression is not None]
