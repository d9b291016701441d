"""Compare runs cell by cell, the asv way: ratio = current / baseline, a mark per metric, and
an exit code CI can gate on.

Times are judged with the run as the unit (see METHOD): samples within one run share that
run's machine state, so pooling them, or pooling several baseline runs' samples, finds
"significance" in the machine's drift. Sizes are exact for identical inputs: they are byte
budgets, judged by the threshold alone. `comparable` is the one rule of what makes two records'
figures measure the same thing; `history` applies it too.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from buildbench.analyze.interference import BUSY_SHARE, others_share
from buildbench.analyze.metrics import METRICS, Metric, ratio
from buildbench.analyze.runlevel import (
    MIN_SPREAD_RUNS,
    MIN_TEST_RUNS,
    NO_PRIOR,
    OUTLIER_ALPHA,
    SPREAD_SDS,
    Prior,
    adjusted_p_values,
    run_p_value,
    run_prior,
    run_spread,
)
from buildbench.analyze.stats import (
    Alternative,
    significance,
)
from buildbench.record import CellRecord, RunInfo
from buildbench.results import RunResults
from buildbench.status import Status

EXIT_REGRESSION = 1  # anything worse or newly failing; usage errors exit 2 (UsageError)

WORSE, BETTER, SAME, NOISE, BUSY = "+", "-", " ", "~", "#"
FAILING, FIXED, NOT_COMPARABLE, MISSING = "!", "*", "x", "?"
MEANINGS = {
    WORSE: "worse",
    BETTER: "better",
    SAME: "same",
    NOISE: "noise",
    BUSY: "busy machine",
    FAILING: "newly failing",
    FIXED: "fixed",
    NOT_COMPARABLE: "not comparable",
    MISSING: "missing",
}
LEGEND = (
    "marks: + worse, - better, ~ beyond the threshold but not significant, # changed while "
    f"others used over {BUSY_SHARE:.0%} of the engine host's CPU (not judged), ! newly failing, "
    "* fixed, x not comparable (Dockerfile, build-args, builder, base image, smoke test or "
    "wheel mode changed), ? missing on one side"
)
METHOD = (
    "times: each run counts once, with the median of its samples; the baseline is the median "
    f"of its comparable runs. With {MIN_TEST_RUNS} or more baseline runs a change must be "
    "significant against their run-to-run spread (one-sided t prediction test on log run "
    f"medians; from {MIN_SPREAD_RUNS} runs on, a run the others predict with p x runs <= "
    f"{OUTLIER_ALPHA:g} is left out as an outlier; each series' variance is shrunk towards "
    "what every time series of the run (all cells, all timed metrics) shows, by empirical "
    "Bayes as limma's moderated t); with fewer, that spread is unknown, the threshold "
    "decides, and the two runs' own samples must at least separate (Mann-Whitney U on the "
    "newest baseline run's samples against the current run's: a check, not a proof, as one "
    "run's samples share its machine state). "
    "The run-level tests are judged all at once (Benjamini-Hochberg at the false discovery "
    "rate: a quiet run is called worse anywhere with about that chance). The threshold is the "
    f"default below {MIN_SPREAD_RUNS} comparable baseline runs, else the machine's own A/A "
    f"spread (e to the power of {SPREAD_SDS:g} standard deviations of the log run medians, "
    "outliers left out), at least the minimum effect. Sizes: the newest baseline run's exact "
    "bytes, against the threshold."
)

# Metrics of the smoke test: a different smoke test (another model or command) measures
# something else; build time and sizes do not depend on it.


@dataclass(frozen=True)
class Thresholds:
    slowdown: float = 1.25  # build time, while the history is too short for its own spread
    smoke_slowdown: float = 1.5  # latency and cold start, idem: noisier from run to run
    growth: float = 1.05  # image and compressed sizes
    alpha: float = 0.05  # significance level of the samples' check (fewer than 3 baseline runs)
    # The false discovery rate over every time one run judges against 3 or more baseline runs
    # (and history's gate): the chance that a quiet run fails (benchmarks/false_alarms.py).
    fdr: float = 0.01
    min_effect: float = 1.05  # the least threshold a history's own spread may give

    def default(self, metric: Metric) -> float:
        if metric.kind == "size":
            return self.growth
        return self.smoke_slowdown if metric.stage == "smoke" else self.slowdown


@dataclass(frozen=True)
class Row:
    mark: str
    cell: str
    metric: str
    baseline: str  # a status row's text ("ok", "-"); "" for a metric: its value is shown
    current: str
    ratio: float | None = None
    evidence: str = ""  # how significance was decided, e.g. "p=0.004 (run vs 5 runs)"
    threshold: float | None = None  # the factor this row was judged against
    p_value: float | None = None
    metric_key: str = ""  # as CSV/JSON name the metric; "" for status and missing rows
    baseline_value: float | None = None
    current_value: float | None = None
    baseline_runs: int = 0  # comparable baseline runs the verdict used
    # The largest share of the engine host's CPU others used in this phase, either side.
    cpu_others_share: float | None = None

    @property
    def regressed(self) -> bool:
        return self.mark in (WORSE, FAILING)


# ---------------------------------------------------------------------------------------------
# What makes two records comparable


def base_image_id(record: CellRecord) -> str | None:
    return record.image.base_image_id if record.image else None


def smoke_identity(record: CellRecord) -> tuple[str, ...] | None:
    """What the smoke test ran: its kind, command, model (the model's files' sha256) and, for a
    service, its request."""
    if record.smoke is None:
        return None
    detail = record.smoke.detail
    return (record.smoke.kind, *(detail.identity() if detail else ()))


IDENTITY: tuple[tuple[str, Callable[[CellRecord], object]], ...] = (
    ("Dockerfile or build-args", lambda r: r.config_hash),
    ("builder", lambda r: r.builder),
    ("base image", base_image_id),
)


def differences(before: CellRecord, after: CellRecord, metric: Metric | None = None) -> list[str]:
    """What differs between the two records' inputs, for `metric` (all metrics when None).

    A value one side did not record (older results, a failed measurement) is no difference:
    nothing says it changed. Build time also depends on how the wheels were fetched
    (--prefetch leaves the index's bandwidth out); smoke metrics on what the smoke test ran.
    """
    checks = list(IDENTITY)
    if metric is None or metric.key == "build_seconds":
        checks.append(("wheel mode", lambda r: r.build.mode))
    if metric is None or metric.stage == "smoke":
        checks.append(("smoke test", smoke_identity))
    found = []
    for name, value in checks:
        old, new = value(before), value(after)
        if old is not None and new is not None and old != new:
            found.append(name)
    return found


def comparable(before: CellRecord, after: CellRecord, metric: Metric | None = None) -> bool:
    """Built from the same inputs the same way, so that the figures measure the same thing."""
    return not differences(before, after, metric)


# ---------------------------------------------------------------------------------------------
# Rows


def compare(
    baseline: Sequence[RunResults], current: RunResults, thresholds: Thresholds
) -> list[Row]:
    """Rows for every cell of either side, matched by name/variant, baseline's order first.

    With several baseline runs (newest last), a cell's baseline is every run whose cell is
    comparable with the newest of them, each counting once.
    """
    history: dict[str, list[CellRecord]] = {}
    for run in baseline:
        for record in run.records:
            history.setdefault(record.key, []).append(record)
    after = {r.key: r for r in current.records}
    keys = dict.fromkeys([*history, *after])
    # One prior for every time series the run judges (each cell's build time, latencies, cold
    # start...): on log values they share a scale, and the nightly run has only 4 cells a metric.
    prior = run_prior(
        [
            _values(_runs(records, metric), metric)
            for records in history.values()
            for metric in METRICS
            if metric.kind == "time"
        ]
    )
    rows = [
        row
        for key in keys
        for row in _cell_rows(history.get(key, []), after.get(key), thresholds, prior)
    ]
    return _judged(rows, thresholds)


def _runs(history: list[CellRecord], metric: Metric) -> list[CellRecord]:
    """The baseline runs of one cell that count for `metric`: ok, and comparable with the
    newest of them."""
    if not history:
        return []
    return [r for r in history if r.status == Status.OK and comparable(r, history[-1], metric)]


def _values(runs: list[CellRecord], metric: Metric) -> list[float]:
    return [v for v in (metric.value(r) for r in runs) if v is not None]


def _judged(rows: list[Row], thresholds: Thresholds) -> list[Row]:
    """Marks of times decided over the whole run: each run-level p-value (3 or more baseline
    runs) adjusted for every such test the run makes (Benjamini-Hochberg at `fdr`), then a busy
    machine's rows marked as such, not judged."""
    family = [
        i
        for i, row in enumerate(rows)
        if row.p_value is not None and row.baseline_runs >= MIN_TEST_RUNS and not _shared(row)
    ]
    adjusted = adjusted_p_values([rows[i].p_value or 0.0 for i in family])
    found = list(rows)
    for i, q in zip(family, adjusted, strict=True):
        row = rows[i]
        assert row.ratio is not None and row.threshold is not None
        significant = q <= thresholds.fdr + 1e-12
        evidence = row.evidence + (
            f"; {_p(q, 'adjusted p')} over {len(family)} tests" if len(family) > 1 else ""
        )
        found[i] = replace(
            row, mark=_mark(row.ratio, row.threshold, significant), evidence=evidence
        )
    return [_busy(row) for row in found]


def _shared(row: Row) -> bool:
    """The row's phase shared a busy machine, either side: not judged."""
    return row.cpu_others_share is not None and row.cpu_others_share > BUSY_SHARE


def _busy(row: Row) -> Row:
    if _shared(row) and row.mark in (WORSE, BETTER, NOISE):
        note = f"busy: others used {row.cpu_others_share:.0%} of the host's CPU"
        return replace(row, mark=BUSY, evidence=f"{row.evidence}; {note}")
    return row


def _cell_rows(
    history: list[CellRecord],
    after: CellRecord | None,
    thresholds: Thresholds,
    prior: Prior,
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
        same = comparable(before, after, metric)
        rows.append(_metric_row(_runs(history, metric), after, metric, thresholds, same, prior))
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


@dataclass(frozen=True)
class Judgement:
    mark: str
    threshold: float
    evidence: str
    p_value: float | None = None


def _metric_row(
    history: list[CellRecord],
    after: CellRecord,
    metric: Metric,
    thresholds: Thresholds,
    same_config: bool,
    prior: Prior = NO_PRIOR,
) -> Row | None:
    """A metric's row; a time's mark is provisional (one test alone) until `_judged`."""
    values = _values(history, metric)
    old = statistics.median(values) if values else None
    new = metric.value(after)
    if old is None and new is None:
        return None  # not measured on either side (no smoke test, no compressed size)
    change = ratio(new, old)
    found = Judgement(SAME, thresholds.default(metric), "")
    if not same_config:
        found = Judgement(NOT_COMPARABLE, found.threshold, "")
    elif change is None or new is None:
        found = Judgement(MISSING, found.threshold, "")
    elif metric.kind == "size":
        found = Judgement(_mark(change, found.threshold, True), found.threshold, "exact")
    else:
        found = judge_time(values, new, history[-1], after, metric, thresholds, prior)
    busy = max(
        (share for r in (history[-1], after) if (share := others_share(r, metric)) is not None),
        default=None,
    )
    return Row(
        found.mark,
        after.key,
        metric.name,
        "",  # a metric's values are shown by render, in its unit
        "",
        change,
        found.evidence,
        found.threshold,
        found.p_value,
        metric.key,
        old,
        new,
        len(values),
        busy,
    )


def time_threshold(
    runs: Sequence[float], default: float, min_effect: float, prior: Prior = NO_PRIOR
) -> float:
    """The factor a time must move by: the runs' own A/A spread (`runlevel.run_spread`: outlier
    runs left out), at least `min_effect`, once there are enough runs to show it; else
    `default`."""
    spread = run_spread(runs, prior)
    return default if spread is None else max(min_effect, spread)


def judge_time(
    runs: list[float],
    value: float,
    newest: CellRecord,
    after: CellRecord,
    metric: Metric,
    thresholds: Thresholds,
    prior: Prior = NO_PRIOR,
) -> Judgement:
    """A current run's value against the baseline runs' values (one median per run), with
    `prior` what every time series of the run says of run-to-run spread. Its significance is that
    of this test alone: `compare` corrects it for the number of tests a run makes."""
    level = statistics.median(runs)
    factor = time_threshold(runs, thresholds.default(metric), thresholds.min_effect, prior)
    alternative: Alternative = "greater" if value > level else "less"
    # A run level with the baseline's is tested too (p about 0.5): with enough runs, every
    # p-value a compare corrects for is a run-level one, never the samples' check below.
    p = run_p_value(runs, value, alternative, prior)
    if p is not None:
        significant = p <= thresholds.alpha
        evidence = f"{_p(p)} (run vs {len(runs)} runs)"
    else:
        # Too few runs for their spread: the threshold decides, the samples must at least agree.
        old_samples, new_samples = metric.samples(newest), metric.samples(after)
        test = significance(old_samples, new_samples, thresholds.alpha)
        significant, p = test.significant, test.p_value
        counts = f"{len(old_samples)} vs {len(new_samples)} samples"
        evidence = f"{_p(p)} ({counts})" if p is not None else f"{test.method} ({counts})"
    return Judgement(_mark(value / level, factor, significant), factor, evidence, p)


def _mark(change: float, factor: float, significant: bool) -> str:
    if change > factor or change < 1 / factor:
        if not significant:
            return NOISE
        return WORSE if change > factor else BETTER
    return SAME


def _p(p_value: float, name: str = "p") -> str:
    return f"{name}<0.001" if p_value < 0.001 else f"{name}={p_value:.3f}"


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
