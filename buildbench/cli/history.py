"""`buildbench history`: trends over many runs, and the runs where something shifted."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from buildbench.analyze.history import history, regressions
from buildbench.cli.options import document_options, option
from buildbench.errors import UsageError
from buildbench.render.history import FORMATS, draw, render
from buildbench.render.report import load_runs, write_output

EXIT_REGRESSION = 1


@click.command(name="history")
@click.argument("results", nargs=-1, type=click.Path(path_type=Path))
@document_options(
    "history",
    FORMATS,
    "Markdown for a job summary; json: one document (regressions, runs left out as busy, a row "
    "per run of each series, busy runs flagged and without a value); csv: the rows.",
)
@option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit 1 when the newest run of a machine reveals a worse shift in a series that passes "
    "its threshold and is significant over all the series it judges (Benjamini-Hochberg).",
)
def history_command(
    results: tuple[Path, ...], output: Path | None, format_: str, fail_on_regression: bool
) -> None:
    """Trends of RESULTS (results files, run folders or results folders, any number), grouped
    by machine and ordered by start time, with change points per cell and metric.

    Example: buildbench history results/ --fail-on-regression
    """
    runs = load_runs(results or (Path("results"),))
    series = history(runs)
    if not series:
        raise UsageError("no cell was measured in these runs", tip="give runs with ok cells")
    if output is None:
        click.echo(render(runs, series, format_, "not drawn: give -o FILE"), nl=False)
    else:
        draw_trends = (lambda path: draw(series, path)) if format_ == "markdown" else None
        write_output(
            output, lambda links: render(runs, series, format_, links), draw_trends, "the history"
        )
        click.echo(f"history: {output}", err=True)
    if fail_on_regression and regressions(series):
        sys.exit(EXIT_REGRESSION)
