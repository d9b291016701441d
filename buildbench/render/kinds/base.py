"""What a kind of smoke test adds to the report: its sections and charts, each where a reader
looks for it (the layers above ask every kind in the registry's order for its report)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from buildbench.analyze.course import Entry
from buildbench.results import RunResults

ChartSpec = tuple[str, str, Callable[[Path], Path]]  # title, file suffix, how to draw it
Section = Callable[[Sequence[RunResults], list[Entry]], str]  # "" when it has nothing
Charts = Callable[[list[Entry], bool], list[ChartSpec]]  # the cells, whether runs merged


def _no_section(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    return ""


def _no_charts(cells: list[Entry], merged: bool) -> list[ChartSpec]:
    return []


@dataclass(frozen=True)
class KindReport:
    # Right after the smoke tests' table: what the kind measured, a section each.
    results: Section = _no_section
    # After every kind's results: what the kind ran (the model kind: its models).
    details: Section = _no_section
    # Among the cells' charts, before the run's own timeline ...
    charts: Charts = _no_charts
    # ... and after it.
    later_charts: Charts = _no_charts
