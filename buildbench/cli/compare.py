"""`buildbench compare`: did anything get worse? An exit code CI gates on."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from buildbench.analyze.compare import EXIT_REGRESSION, Thresholds, compare, regressions
from buildbench.analyze.explain import explain_rows
from buildbench.analyze.shards import merge_slices
from buildbench.cli.options import format_option, option
from buildbench.errors import UsageError
from buildbench.render.comparison import FORMATS, render_comparison
from buildbench.results import RunResults, load_results, results_files


def _baseline(paths: list[Path], current: RunResults, newest: int) -> list[RunResults]:
    """The newest `newest` runs of the current run's machine among `paths`, oldest first."""
    runs = merge_slices([load_results(path) for path in paths])
    runs = [run for run in runs if run.info.run_id != current.info.run_id]
    same = [run for run in runs if run.info.machine == current.info.machine] or runs
    same.sort(key=lambda run: run.info.started_at)
    if not same:
        raise UsageError("the baseline holds no other run", tip="give an earlier run's results")
    return same[-newest:]


@click.command(name="compare")
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("current", type=click.Path(path_type=Path))
@option(
    "--max-slowdown",
    type=click.FloatRange(min=1.0),
    default=1.25,
    show_default=True,
    help="Worse when build time grows by more than this factor and significantly, while the "
    "baseline has fewer than 5 comparable runs; from 5 on, their own A/A spread is the factor.",
)
@option(
    "--max-smoke-slowdown",
    type=click.FloatRange(min=1.0),
    default=1.5,
    show_default=True,
    help="The same for p50 latency and cold start, which vary more from run to run.",
)
@option(
    "--min-effect",
    type=click.FloatRange(min=1.0),
    default=1.05,
    show_default=True,
    help="The least factor a baseline's own A/A spread may set.",
)
@option(
    "--max-growth",
    type=click.FloatRange(min=1.0),
    default=1.05,
    show_default=True,
    help="Worse when the image or compressed size grows by more than this factor.",
)
@option(
    "--alpha",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=0.05,
    show_default=True,
    help="Significance level of the check on the samples (fewer than 3 baseline runs).",
)
@option(
    "--fdr",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=0.01,
    show_default=True,
    help="False discovery rate over every time judged against 3 or more baseline runs, all "
    "cells together: about the chance that a quiet run fails.",
)
@option(
    "--baseline-runs",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="With a folder of runs as BASELINE: this many of the current machine's newest runs, "
    "each counting once.",
)
@format_option(
    "compare",
    FORMATS,
    "markdown: a table fit for a CI job summary; json: one document for a dashboard "
    "(verdict, runs, thresholds, a row per metric); csv: the rows.",
)
def compare_command(
    baseline: Path,
    current: Path,
    max_slowdown: float,
    max_smoke_slowdown: float,
    min_effect: float,
    max_growth: float,
    alpha: float,
    fdr: float,
    baseline_runs: int,
    format_: str,
) -> None:
    """Compare CURRENT with BASELINE, cell by cell. BASELINE: a results.json, a run folder, or
    a folder of earlier runs (the machine's history, each run counting once); CURRENT: a run (the
    newest, given a folder of runs).

    Prints current/baseline per cell and metric. Exit status: 0 when nothing regressed,
    1 when a metric got significantly worse or a cell newly fails, 2 when a file cannot be read.

    Example: buildbench compare results/<old-run-id> results/<new-run-id>
    """
    found = merge_slices([load_results(path) for path in results_files([current])])
    after = max(found, key=lambda r: r.info.started_at)
    before = _baseline(results_files([baseline]), after, baseline_runs)
    thresholds = Thresholds(
        slowdown=max_slowdown,
        smoke_slowdown=max_smoke_slowdown,
        growth=max_growth,
        alpha=alpha,
        fdr=fdr,
        min_effect=min_effect,
    )
    rows = compare(before, after, thresholds)
    explained = explain_rows(rows, before, after)
    infos = [run.info for run in before]
    text = render_comparison(rows, infos, after.info, thresholds, format_, explained)
    click.echo(text, nl=False)
    if regressions(rows):
        sys.exit(EXIT_REGRESSION)
