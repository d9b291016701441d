"""What every Markdown section of the report is made of: a table, the machine column of a
merged report, an interval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from buildbench.record import Summary
from buildbench.render import fmt
from buildbench.results import RunResults


def markdown_table(rows: list[list[Any]], headers: list[str]) -> str:
    cells = [[fmt.md_cell(str(value)) for value in row] for row in rows]
    return tabulate(cells, headers=headers, tablefmt="github", disable_numparse=True)


def machine_column(runs: Sequence[RunResults], machine: str) -> list[str]:
    """The machine column, present only when the report merges several runs."""
    return [machine] if len(runs) > 1 else []


def summary_interval(summary: Summary, show: str = "s") -> str:
    return fmt.interval(summary.median, summary.ci_low, summary.ci_high, show)
