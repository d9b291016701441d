"""Where a run's wall time goes: one phase after another, with no gap and no overlap.

A run is always in exactly one phase (preflight, model preparation, a cell's build sample, its
smoke test's current stage, ...); entering the next ends the current one, so the phases add up
to the run's wall time by construction, whatever buildbench does between the measured work.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence

from buildbench.record import Phase


def now() -> str:
    """The wall clock as results record it (a run's start and end)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Timeline:
    def __init__(self) -> None:
        self._origin = time.monotonic()
        self.phases: list[Phase] = []
        self._current: tuple[str, str | None, str | None, float] | None = None

    def enter(self, name: str, cell: str | None = None, detail: str | None = None) -> None:
        """End the current phase and start `name` (for `cell`), unless it is the current one."""
        if self._current is not None and self._current[:3] == (name, cell, detail):
            return
        self.close()
        self._current = (name, cell, detail, time.monotonic())

    def close(self) -> float:
        """End the current phase; the seconds since the timeline began."""
        now = time.monotonic()
        if self._current is not None:
            name, cell, detail, began = self._current
            start, seconds = round(began - self._origin, 3), round(now - began, 3)
            self.phases.append(Phase(name, start, seconds, cell, detail))
            self._current = None
        return round(now - self._origin, 3)


def phase_seconds(phases: Sequence[Phase]) -> Mapping[tuple[str | None, str, str | None], float]:
    """Seconds per (cell, phase, detail), summed: what the live view shows as "last run"."""
    found: dict[tuple[str | None, str, str | None], float] = {}
    for p in phases:
        key = (p.cell, p.name, p.detail)
        found[key] = found.get(key, 0.0) + p.seconds
    return found
