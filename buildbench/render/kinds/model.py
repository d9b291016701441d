"""The model kind's report: the time to first inference, split by phase (a section and a
stacked chart), and the models it ran (render/models.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from buildbench.analyze.course import Entry
from buildbench.analyze.derived import quantiles
from buildbench.analyze.stats import summarize
from buildbench.record import CellRecord, model_of
from buildbench.render import charts, fmt
from buildbench.render.kinds.base import ChartSpec, KindReport
from buildbench.render.mdparts import machine_column, markdown_table
from buildbench.render.models import models_section
from buildbench.results import RunResults


def _startup_section(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    """Time to first inference, split by phase (medians over the fresh containers)."""
    rows = []
    for e in cells:
        smoke, shipping = model_of(e.record.smoke), e.record.registry
        if not smoke.startup:
            continue
        phases = [
            summarize([s.container_start for s in smoke.startup]).median,
            summarize([s.framework_import for s in smoke.startup]).median,
            summarize([s.model_load for s in smoke.startup]).median,
            summarize([s.first_inference for s in smoke.startup]).median,
        ]
        b1 = smoke.latency.get("1")
        total = sum(p or 0.0 for p in phases)
        pull = shipping.pull_seconds if shipping else None
        rows.append(
            [
                *machine_column(runs, e.machine),
                e.record.key,
                *(fmt.seconds(p) for p in phases),
                fmt.seconds(total),
                fmt.ms(quantiles(b1).p50) if b1 else "-",
                fmt.seconds(pull),
                fmt.seconds(None if pull is None else pull + total),
            ]
        )
    if not rows:
        return ""
    headers = [*machine_column(runs, "machine"), "cell", "container start", "framework import"]
    headers += ["model load", "first inference", "to first inference", "then p50 b=1"]
    headers += ["pull", "from nothing"]
    note = (
        "Medians over the fresh containers. Container start: the start request until the "
        "program's first line; model load: weights and module, or the ONNX Runtime session. "
        "From nothing: pulling the image from the registry (base layers present) plus the "
        "start-up."
    )
    return "## Time to first inference\n\n" + markdown_table(rows, headers) + "\n\n" + note


def _models(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    return models_section(runs)


def _has_startup(record: CellRecord) -> bool:
    return bool(model_of(record.smoke).startup)


def _startup_stack(entry: Entry, merged: bool) -> charts.Stack:
    smoke = model_of(entry.record.smoke)
    parts = {
        "container start": [s.container_start for s in smoke.startup],
        "framework import": [s.framework_import for s in smoke.startup],
        "model load": [s.model_load for s in smoke.startup],
        "first inference": [s.first_inference for s in smoke.startup],
    }
    segments = [(name, summarize(values).median or 0.0) for name, values in parts.items()]
    if entry.record.registry and entry.record.registry.pull_seconds is not None:
        segments.insert(0, ("pull", entry.record.registry.pull_seconds))
    label = f"{entry.record.key} @ {entry.machine}" if merged else entry.record.key
    return charts.Stack(label, segments)


def first_inference_charts(cells: list[Entry], merged: bool) -> list[ChartSpec]:
    """Time to first inference, a stacked bar per cell; none without a start-up measured."""
    stacks = [_startup_stack(e, merged) for e in cells if _has_startup(e.record)]
    if not stacks:
        return []

    def draw(path: Path) -> Path:
        title = "Time to first inference (median)"
        return charts.stacked_bars(path, stacks, title=title, ylabel="seconds")

    return [("Time to first inference", "first-inference", draw)]


REPORT = KindReport(results=_startup_section, details=_models, charts=first_inference_charts)
