"""The report's first question, answered from results: every runtime of a run against PyTorch,
per machine and variant (build time, size, compressed size, cold start, p50 latency at the
smallest and the largest batch), each figure with how many times PyTorch's it is; where a cell
has no figure, one word for why, and the reason where there is one.

Which runtimes there are is the caller's (the registry lives above this layer): a runtime added
later is one more name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from buildbench.analyze.course import Entry, build_median, entries, labelled
from buildbench.analyze.derived import cold_start_summary, quantiles
from buildbench.analyze.metrics import ratio
from buildbench.record import CellRecord, model_of
from buildbench.results import RunResults
from buildbench.status import NO_IMAGE, Status

BASELINE = "pytorch"  # what every other runtime is held against
NOT_APPLICABLE = "n/a"


@dataclass(frozen=True)
class Figure:
    """One figure of a cell: its value, how many times PyTorch's it is (PyTorch's over this
    one: above 1, this runtime is faster or smaller), or the word for why there is none."""

    value: float | None
    times: float | None = None
    word: str | None = None


@dataclass(frozen=True)
class RuntimeRow:
    machine: str
    variant: str
    runtime: str
    record: CellRecord | None  # None: the run has no such cell (`why` says why)
    why: str | None = None  # the reason behind a word: not built, not applicable, failed
    build: Figure = Figure(None)
    size: Figure = Figure(None)
    compressed: Figure = Figure(None)
    cold_start: Figure = Figure(None)
    latency: dict[str, Figure] = field(default_factory=dict)  # p50 by batch size


def runtime_rows(
    runs: Sequence[RunResults], names: Sequence[str], missing: Mapping[str, str]
) -> list[RuntimeRow]:
    """A row per machine, variant and runtime of `names` (in their order) that the run has, or
    left out of a variant it built (`missing`: runtime -> why it has no such variant; the run's
    `not_built`: why it built no image)."""
    cells = {(e.machine, e.record.variant, e.record.name): e for e in entries(runs)}
    left_out = {
        (machine, *reversed(key.split("/", 1))): why
        for machine, run in labelled(runs)
        for key, why in (run.info.options.get("not_built") or {}).items()
    }
    present = [key for key in [*cells, *left_out] if key[2] in names]
    wanted = {name for _, _, name in present}
    groups = dict.fromkeys((machine, variant) for machine, variant, _ in [*cells, *left_out])
    batches = _batches([cells[k].record for k in present if k in cells])
    rows = []
    for machine, variant in groups:
        base = cells.get((machine, variant, BASELINE))
        for name in (n for n in names if n in wanted):
            key = (machine, variant, name)
            if key in cells:
                rows.append(_row(cells[key], base.record if base else None, batches))
            elif key in left_out or name in missing:
                why = left_out.get(key) or missing[name]
                rows.append(_not_applicable(machine, variant, name, why, batches))
    return rows


def _not_applicable(
    machine: str, variant: str, name: str, why: str, batches: list[str]
) -> RuntimeRow:
    none = Figure(None, word=NOT_APPLICABLE)
    latency = dict.fromkeys(batches, none)
    return RuntimeRow(machine, variant, name, None, why, none, none, none, none, latency)


def _batches(records: Sequence[CellRecord]) -> list[str]:
    """The smallest and the largest batch size any of these cells' models was timed at."""
    timed = sorted({b for r in records for b in model_of(r.smoke).latency}, key=int)
    return list(dict.fromkeys(timed[:1] + timed[-1:]))


def _row(entry: Entry, base: CellRecord | None, batches: list[str]) -> RuntimeRow:
    r = entry.record
    versus = base if base is not None and base.status not in NO_IMAGE else None
    why = r.error if r.status != Status.OK else model_of(r.smoke).not_applicable

    def figure(metric: Callable[[CellRecord], float | None], smoke: bool) -> Figure:
        # Not the image it claims to be, or none (a failed build's time: to the failure)
        value = None if r.status in NO_IMAGE else metric(r)
        if value is None:
            return Figure(None, word=_word(r, smoke))
        return Figure(value, ratio(metric(versus), value) if versus and versus is not r else None)

    return RuntimeRow(
        entry.machine,
        r.variant,
        r.name,
        r,
        why,
        build=figure(build_median, smoke=False),
        size=figure(_size, smoke=False),
        compressed=figure(_compressed, smoke=False),
        cold_start=figure(_cold_start, smoke=True),
        latency={b: figure(_p50(b), smoke=True) for b in batches},
    )


def _word(r: CellRecord, smoke: bool) -> str:
    """Why a cell has no figure, in a word or two."""
    if r.status in NO_IMAGE:
        return _status(r.status)
    if not smoke:
        return "not read" if r.image is not None else _status(r.status)
    if r.smoke is None:
        return "not run" if r.status == Status.OK else _status(r.status)
    if model_of(r.smoke).not_applicable:
        return NOT_APPLICABLE
    if r.smoke.status != Status.OK:
        return _status(r.smoke.status)
    return "not timed"


def _status(status: Status) -> str:
    return status.value.replace("_", " ")


def _size(r: CellRecord) -> float | None:
    return None if r.image is None else r.image.size_bytes


def _compressed(r: CellRecord) -> float | None:
    return None if r.image is None else r.image.compressed_size_bytes


def _cold_start(r: CellRecord) -> float | None:
    return cold_start_summary(r.smoke).median if r.smoke else None


def _p50(batch: str) -> Callable[[CellRecord], float | None]:
    def p50(r: CellRecord) -> float | None:
        found = model_of(r.smoke).latency.get(batch)
        return quantiles(found).p50 if found and found.samples else None

    return p50
