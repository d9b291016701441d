"""`buildbench compare`: did anything get worse between two runs? An exit code CI gates on."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from buildbench.cli.options import option
from buildbench.compare import (
    EXIT_REGRESSION,
    FORMATS,
    Thresholds,
    compare,
    regressions,
    render,
)
from buildbench.results import load_results


@click.command(name="compare")
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("current", type=click.Path(path_type=Path))
@option(
    "--max-slowdown",
    type=click.FloatRange(min=1.0),
    default=1.25,
    show_default=True,
    help="Worse when build time, p50 latency or cold start grows by more than this factor.",
)
@option(
    "--max-growth",
    type=click.FloatRange(min=1.0),
    default=1.05,
    show_default=True,
    help="Worse when the image or compressed size grows by more than this factor.",
)
@option(
    "--format",
    "format_",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    envvar="BUILDBENCH_COMPARE_FORMAT",
    help="markdown gives a table fit for a CI job summary.",
)
def compare_command(
    baseline: Path, current: Path, max_slowdown: float, max_growth: float, format_: str
) -> None:
    """Compare CURRENT with BASELINE (results.json files or run directories), cell by cell.

    Prints current/baseline per cell and metric. Exit status: 0 when nothing regressed,
    1 when a metric got worse or a cell newly fails, 2 when a file cannot be read.

    Example: buildbench compare results/<old-run-id> results/<new-run-id>
    """
    before, after = load_results(baseline), load_results(current)
    thresholds = Thresholds(slowdown=max_slowdown, growth=max_growth)
    rows = compare(before[1], after[1], thresholds)
    click.echo(render(rows, (before[0], after[0]), thresholds, format_), nl=False)
    if regressions(rows):
        sys.exit(EXIT_REGRESSION)
