"""The report's "Where the time went": a run's wall time by phase and by cell, and its chart."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from buildbench.analyze.timeline import CELL_PHASES, cell_phases, phase_totals
from buildbench.render import charts, fmt
from buildbench.results import RunResults


def timeline_section(runs: Sequence[RunResults]) -> str:
    timed = [run for run in runs if run.info.timeline and run.info.wall_seconds]
    if not timed:
        return ""
    parts = [
        "## Where the time went",
        "Every phase of a run, back to back: they add up to its wall time (the run's own "
        "work between measurements, such as writing results, counts in the phase it "
        "happened in).",
    ]
    for run in timed:
        info = run.info
        totals = phase_totals(info)
        rows = [[t.name, fmt.seconds(t.seconds), fmt.percent(t.share), t.count] for t in totals]
        parts.append(f"`{info.run_id}` on {info.machine}: {fmt.seconds(info.wall_seconds)} wall")
        parts.append(tabulate(rows, ["phase", "seconds", "share", "stretches"], tablefmt="github"))
        cells = cell_phases(info)
        if cells:
            cell_rows = [
                [
                    key,
                    *(fmt.seconds(found.get(name)) for name in CELL_PHASES),
                    fmt.seconds(sum(found.values())),
                ]
                for key, found in cells.items()
            ]
            headers = ["cell", *CELL_PHASES, "total"]
            parts.append(tabulate(cell_rows, headers, tablefmt="github"))
    return "\n\n".join(parts)


def timeline_stacks(runs: Sequence[RunResults]) -> list[charts.Stack]:
    """One bar per run, a segment per phase."""
    return [
        charts.Stack(
            f"{run.info.machine} {run.info.run_id}" if len(runs) > 1 else run.info.run_id,
            [(t.name, t.seconds) for t in phase_totals(run.info)],
        )
        for run in runs
        if run.info.timeline
    ]
