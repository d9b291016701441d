"""`buildbench report`: one report from one or more results files (machines, engines, CI jobs)."""

from __future__ import annotations

from pathlib import Path

import click

from buildbench.cli.options import document_options
from buildbench.render.report import FORMATS, load_runs, render, write_report


@click.command()
@click.argument("results", nargs=-1, type=click.Path(path_type=Path))
@document_options("report", FORMATS, "Markdown for people; csv and json give a row per cell.")
def report(results: tuple[Path, ...], output: Path | None, format_: str) -> None:
    """Write a report of RESULTS (results.json files, run folders or results folders); several
    runs merge into one report with a machine column.

    Example: buildbench report results/<run-id> gpu-box/results.json -o report.md
    """
    runs = load_runs(results)
    if output is None:
        click.echo(render(runs, format_, "not drawn: give -o FILE to draw them"), nl=False)
        return
    click.echo(f"report: {write_report(output, runs, format_)}", err=True)
