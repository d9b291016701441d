"""Why a metric changed between two records of a cell: what `compare` and `history` add to
each change they flag (render/explain.py puts it in words).

- sizes: the contents diff (`sizediff`): distributions, packages, layers, findings;
- build time: the steps, matched by instruction, whose time changed most (and the context's
  packing, and --prefetch's download);
- start-up: which phase moved (container start, framework import, model load, first
  inference); latency: versions, providers, threads, and others' use of the CPU each side;
- every metric: the conditions that differ (the Dockerfile's instructions as a unified diff,
  build-args, base image, builder, wheel mode, smoke test; the engine's version, kernel, CPU,
  cores, storage driver; buildbench's version).
"""

from __future__ import annotations

import difflib
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from buildbench.analyze.compare import (
    BETTER,
    BUSY,
    NOISE,
    NOT_COMPARABLE,
    WORSE,
    Row,
    smoke_identity,
)
from buildbench.analyze.history import Series
from buildbench.analyze.interference import others_share
from buildbench.analyze.metrics import METRIC_BY_KEY, Metric
from buildbench.analyze.sizediff import SizeDiff, diff_inventories, normalized, record_inventory
from buildbench.analyze.steps import StepChange, step_changes
from buildbench.record import CellRecord, Download, RunInfo, Startup, model_of
from buildbench.results import RunResults

FLAGGED = (WORSE, BETTER, NOISE, BUSY, NOT_COMPARABLE)  # the marks a row is explained for
STEPS_SHOWN = 3
PHASES: tuple[tuple[str, Callable[[Startup], float]], ...] = (
    ("container start", lambda s: s.container_start),
    ("framework import", lambda s: s.framework_import),
    ("model load", lambda s: s.model_load),
    ("first inference", lambda s: s.first_inference),
)
# The metrics the start-up phases add up to (a latency is timed after them: not theirs).
STARTUP_METRICS = frozenset({"cold_start_seconds", "ready_seconds"})
# buildbench's own labels name the run: no difference between two builds of one Dockerfile.
_OWN_LABEL = "LABEL buildbench."


@dataclass(frozen=True)
class Difference:
    """Something that differs between the two sides: its name, old and new values, and for
    the Dockerfile a unified diff of its instructions."""

    name: str
    old: str
    new: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class PhaseChange:
    name: str
    old: float
    new: float

    @property
    def delta(self) -> float:
        return self.new - self.old


@dataclass(frozen=True)
class Explanation:
    """What moved with one metric of one cell, between two records."""

    cell: str
    metric: Metric
    sizes: SizeDiff | None = None
    steps: list[StepChange] = field(default_factory=list)  # the largest changes first
    phases: list[PhaseChange] = field(default_factory=list)  # the largest change first
    versions: list[Difference] = field(default_factory=list)  # and settings, threads
    busy: tuple[float | None, float | None] = (None, None)  # others' CPU share, each side
    # Build time: the steps' medians added up, and the build's median, each side.
    step_totals: tuple[float, float] | None = None
    build_totals: tuple[float, float] | None = None
    conditions: list[Difference] = field(default_factory=list)  # how the image was made
    environment: list[Difference] = field(default_factory=list)  # where the runs ran


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a record and the run it is from."""

    record: CellRecord
    info: RunInfo


def explain(metric: Metric, before: Side, after: Side) -> Explanation:
    old, new = before.record, after.record
    sizes = None
    if metric.kind == "size":
        a, b = record_inventory(old), record_inventory(new)
        sizes = diff_inventories(a, b) if a is not None and b is not None else None
    steps: list[StepChange] = []
    step_totals = build_totals = None
    if metric.key == "build_seconds":
        changes = _build_changes(old, new)
        steps = [c for c in changes if c.delta][:STEPS_SHOWN]
        builds = _median(old.build.seconds), _median(new.build.seconds)
        if builds[0] is not None and builds[1] is not None:
            build_totals = (builds[0], builds[1])
            step_totals = (
                sum(c.old_seconds or 0.0 for c in changes),
                sum(c.new_seconds or 0.0 for c in changes),
            )
    phases = _phase_changes(old, new) if metric.key in STARTUP_METRICS else []
    versions = versions_that_differ(old, new) if metric.stage != "image" else []
    if metric.key == "build_seconds":
        versions += _download(old, new)
    busy = (others_share(old, metric), others_share(new, metric))
    return Explanation(
        cell=new.key,
        metric=metric,
        sizes=sizes,
        steps=steps,
        phases=phases,
        versions=versions,
        busy=busy,
        step_totals=step_totals,
        build_totals=build_totals,
        conditions=cell_conditions(old, new),
        environment=run_conditions(before.info, after.info),
    )


# ---------------------------------------------------------------------------------------------
# What compare flagged


@dataclass(frozen=True)
class Explained:
    """Explanations of a comparison's flagged rows, by (cell, metric key)."""

    rows: dict[tuple[str, str], Explanation]

    def of(self, row: Row) -> Explanation | None:
        return self.rows.get((row.cell, row.metric_key))


def explain_rows(
    rows: Sequence[Row], baseline: Sequence[RunResults], current: RunResults
) -> Explained:
    """An explanation for each flagged metric row: the current record against the newest
    baseline run's record of the cell (the one compare's marks and conditions are against)."""
    newest: dict[str, Side] = {}
    for run in baseline:
        for record in run.records:
            newest[record.key] = Side(record, run.info)
    now = {record.key: Side(record, current.info) for record in current.records}
    found = {}
    for row in rows:
        metric = METRIC_BY_KEY.get(row.metric_key)
        if (
            metric is None
            or row.mark not in FLAGGED
            or row.cell not in newest
            or row.cell not in now
        ):
            continue
        if row.mark == NOT_COMPARABLE and row.baseline_value == row.current_value:
            continue  # nothing moved: the conditions alone are not news for this metric
        found[row.cell, row.metric_key] = explain(metric, newest[row.cell], now[row.cell])
    return Explained(found)


# ---------------------------------------------------------------------------------------------
# Build time, start-up, versions


def _build_changes(before: CellRecord, after: CellRecord) -> list[StepChange]:
    """Steps by instruction (buildbench's own labels left out), with the context's packing."""
    steps = [
        c
        for c in step_changes(before.build.steps, after.build.steps)
        if not c.instruction.startswith(_OWN_LABEL)
    ]
    old, new = _median(before.build.context_seconds), _median(after.build.context_seconds)
    if old is not None and new is not None:
        steps.append(StepChange("(context packed and sent)", old, new))
    return sorted(steps, key=lambda c: -abs(c.delta))


def _download(before: CellRecord, after: CellRecord) -> list[Difference]:
    """What --prefetch downloaded before the timed builds, where either side recorded it: a
    build that stopped downloading inside its timing, or started, moved by that much."""
    old, new = before.build.download, after.build.download
    if old == new:
        return []

    def shown(found: Download | None) -> str:
        if found is None:
            return "none (downloads inside the timed build)"
        return f"{found.bytes / 1e6:.1f} MB in {found.seconds:.1f} s ({found.files} files)"

    return [Difference("prefetched download", shown(old), shown(new))]


def _median(values: Sequence[float] | None) -> float | None:
    return statistics.median(values) if values else None


def _phase_changes(before: CellRecord, after: CellRecord) -> list[PhaseChange]:
    old, new = model_of(before.smoke).startup, model_of(after.smoke).startup
    if not old or not new:
        return []
    found = [
        PhaseChange(name, statistics.median(map(phase, old)), statistics.median(map(phase, new)))
        for name, phase in PHASES
    ]
    return sorted(found, key=lambda c: -abs(c.delta))


def versions_that_differ(before: CellRecord, after: CellRecord) -> list[Difference]:
    """Python, framework and runtime versions, providers, threads and device, each side."""

    def smoke(record: CellRecord, name: str) -> object:
        """A field of the smoke result's header, else of its model detail."""
        if record.smoke is None:
            return None
        return getattr(model_of(record.smoke), name, getattr(record.smoke, name, None))

    def threads(record: CellRecord) -> object:
        settings = model_of(record.smoke).settings
        return settings[0].threads if settings else None

    checks: list[tuple[str, Callable[[CellRecord], object]]] = [
        ("Python", lambda r: r.image.python_version if r.image else smoke(r, "python_version")),
        (
            "framework",
            lambda r: r.image.framework_version if r.image else smoke(r, "framework_version"),
        ),
        ("providers", lambda r: smoke(r, "providers")),
        ("threads", threads),
        ("device", lambda r: smoke(r, "device")),
        ("CUDA", lambda r: smoke(r, "cuda_version")),
    ]
    return _differences(checks, before, after)


def _differences(
    checks: Sequence[tuple[str, Callable[[CellRecord], object]]]
    | Sequence[tuple[str, Callable[[RunInfo], object]]],
    before: object,
    after: object,
) -> list[Difference]:
    found = []
    for name, value in checks:
        old, new = value(before), value(after)  # type: ignore[arg-type]
        if old is not None and new is not None and old != new:
            found.append(Difference(name, _text(old), _text(new)))
    return found


def _text(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


# ---------------------------------------------------------------------------------------------
# Conditions


def cell_conditions(before: CellRecord, after: CellRecord) -> list[Difference]:
    """What differs in how the two records' images were made and tested."""
    found = []
    dockerfile = dockerfile_diff(before, after)
    if dockerfile is not None:
        found.append(dockerfile)
    for name in sorted({*before.build_args, *after.build_args}):
        old, new = before.build_args.get(name), after.build_args.get(name)
        if old != new:
            found.append(Difference(f"build-arg {name}", _arg(old), _arg(new)))
    checks: list[tuple[str, Callable[[CellRecord], object]]] = [
        ("base image", lambda r: r.image.base_image_id if r.image else None),
        ("builder", lambda r: r.builder),
        ("wheel mode", lambda r: r.build.mode),
        ("smoke test", lambda r: " ".join(smoke_identity(r) or ()) or None),
    ]
    return found + _differences(checks, before, after)


def _arg(value: str | None) -> str:
    return "(unset)" if value is None else repr(value)


def dockerfile_diff(before: CellRecord, after: CellRecord) -> Difference | None:
    """The Dockerfile's instructions (as the builder recorded each step) as a unified diff;
    where no steps were recorded, only that the hash differs."""
    if before.config_hash == after.config_hash or not before.config_hash or not after.config_hash:
        return None
    old, new = _instructions(before), _instructions(after)
    if old and new:
        lines = tuple(
            line.rstrip("\n")
            for line in difflib.unified_diff(old, new, "baseline", "current", lineterm="", n=1)
        )
        if lines:
            return Difference("Dockerfile", before.dockerfile, after.dockerfile, lines)
    return Difference("Dockerfile or build-args", before.config_hash, after.config_hash)


def _instructions(record: CellRecord) -> list[str]:
    return [
        normalized(step.instruction)
        for step in record.build.steps
        if not step.instruction.startswith(_OWN_LABEL)
    ]


RUN_CONDITIONS: tuple[tuple[str, Callable[[RunInfo], object]], ...] = (
    ("machine", lambda i: i.machine),
    ("engine version", lambda i: i.engine.server_version),
    ("kernel", lambda i: i.engine.kernel or None),
    ("CPU", lambda i: i.engine.cpu_model or i.cpu),
    ("cores", lambda i: i.engine.cpus or i.cpu_count),
    ("storage driver", lambda i: i.engine.storage_driver or None),
    ("buildbench version", lambda i: i.buildbench_version),
    ("buildbench commit", lambda i: i.git_commit),
)


def run_conditions(before: RunInfo, after: RunInfo) -> list[Difference]:
    return _differences(RUN_CONDITIONS, before, after)


# ---------------------------------------------------------------------------------------------
# What history reports


SeriesKey = tuple[str, str, str, int]  # machine, cell, metric key, the point's index


def explain_series(
    series: Sequence[Series], runs: Sequence[RunResults]
) -> dict[SeriesKey, Explanation]:
    """An explanation for each shift and restart of every series: the record of the run where
    it starts against the run before it."""
    sides = {
        (run.info.run_id, record.key): Side(record, run.info)
        for run in runs
        for record in run.records
    }
    found = {}
    for s in series:
        for index in sorted({*(x.index for x in s.shifts), *(r.index for r in s.restarts)}):
            if index < 1:
                continue
            old = sides.get((s.points[index - 1].run_id, s.cell))
            new = sides.get((s.points[index].run_id, s.cell))
            if old is not None and new is not None:
                found[s.machine, s.cell, s.metric.key, index] = explain(s.metric, old, new)
    return found
