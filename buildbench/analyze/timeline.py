"""Where a run's wall time went, from its timeline: seconds per phase, and per cell."""

from __future__ import annotations

from dataclasses import dataclass

from buildbench.record import RunInfo

# The order phases happen in a run; any other name (a newer kind's) follows.
PHASE_ORDER = (
    "preflight",
    "base push",
    "model preparation",
    "prefetch",
    "build",
    "measure",
    "smoke",
    "shipping",
    "clean-up",
    "cold pulls",
)
CELL_PHASES = ("build", "measure", "smoke", "shipping", "clean-up")


@dataclass(frozen=True)
class PhaseTotal:
    name: str
    seconds: float
    share: float | None  # of the run's wall time
    count: int  # how many stretches (build samples, smoke stages, ...)


def phase_totals(info: RunInfo) -> list[PhaseTotal]:
    """Seconds per phase name, in the order a run goes through them."""
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    for phase in info.timeline:
        seconds[phase.name] = seconds.get(phase.name, 0.0) + phase.seconds
        counts[phase.name] = counts.get(phase.name, 0) + 1
    order = [*PHASE_ORDER, *sorted(set(seconds) - set(PHASE_ORDER))]
    wall = info.wall_seconds
    return [
        PhaseTotal(name, seconds[name], seconds[name] / wall if wall else None, counts[name])
        for name in order
        if name in seconds
    ]


def cell_phases(info: RunInfo) -> dict[str, dict[str, float]]:
    """Per cell, seconds per phase (build, measure, smoke, shipping, clean-up)."""
    found: dict[str, dict[str, float]] = {}
    for phase in info.timeline:
        if phase.cell is not None:
            cell = found.setdefault(phase.cell, {})
            cell[phase.name] = cell.get(phase.name, 0.0) + phase.seconds
    return found
