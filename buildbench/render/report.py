"""Writing a report: Markdown with PNG charts next to it, or CSV/JSON views of the same cells.
Several results files (machines, engines, CI jobs) merge into one report."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from buildbench.analyze.course import Entry, build_median, course_comparison, entries
from buildbench.analyze.derived import build_summary
from buildbench.analyze.shards import merge_slices
from buildbench.errors import UsageError
from buildbench.record import SCHEMA_VERSION, CellRecord
from buildbench.render import charts, fmt, runtimes
from buildbench.render.kinds import kind_reports
from buildbench.render.markdown import render_markdown
from buildbench.render.tables import cells_frame
from buildbench.render.timeline import timeline_stacks
from buildbench.results import RunResults, load_results, results_files
from buildbench.status import Status

REPORT_MD = "report.md"
FORMATS = ("markdown", "csv", "json")
CHARTS_MISSING = "skipped: matplotlib is not installed (pip install 'buildbench[report]')"


def load_runs(paths: Sequence[Path]) -> list[RunResults]:
    if not paths:
        raise UsageError(
            "no results given", tip="buildbench report results/<run-id> [more runs ...]"
        )
    return merge_slices([load_results(path) for path in results_files(paths)])


def render_json(runs: Sequence[RunResults]) -> str:
    document = {
        "schema_version": SCHEMA_VERSION,
        "runs": [run.info.run_id for run in runs],
        "cells": json.loads(cells_frame(runs).to_json(orient="records", double_precision=15)),
        "course_comparison": course_comparison(runs),
    }
    return json.dumps(document, indent=2) + "\n"


def render(
    runs: Sequence[RunResults], format_: str, chart_links: list[tuple[str, str]] | str
) -> str:
    if format_ == "csv":
        return cells_frame(runs).to_csv(index=False)
    if format_ == "json":
        return render_json(runs)
    return render_markdown(runs, chart_links)


def draw_charts(runs: Sequence[RunResults], report: Path) -> list[tuple[str, str]] | str:
    """PNGs next to the report, named after it; a note instead when matplotlib is missing."""
    cells = _by_image(entries(runs))  # a failed cell shows as its status on the axis
    merged = len(runs) > 1
    spread = any(len(e.record.build.seconds) > 1 for e in cells)
    wanted = [
        (
            "Build time per cell",
            "build-time",
            lambda path: charts.grouped_bars(
                path,
                [_bar(e, merged, *_time(e.record)) for e in cells],
                title="Build time per cell" + (" (median; whiskers: interval)" if spread else ""),
                ylabel="seconds",
            ),
        ),
        (
            "Image size per cell",
            "image-size",
            lambda path: charts.grouped_bars(
                path,
                [_bar(e, merged, *_size_gb(e.record)) for e in cells],
                title="Image size per cell",
                ylabel="GB",
            ),
        ),
    ]
    if first := runtimes.chart(runs):
        wanted.insert(0, (runtimes.CHART_TITLE, runtimes.CHART_SUFFIX, first))
    reports = kind_reports()
    wanted += [chart for kind in reports for chart in kind.charts(cells, merged)]
    if stacks := timeline_stacks(runs):
        wanted.append(("Where the time went", "timeline", _stacked_chart(stacks)))
    wanted += [chart for kind in reports for chart in kind.later_charts(cells, merged)]
    try:
        drawn = [
            (title, draw(report.with_name(f"{report.stem}-{suffix}.png")).name)
            for title, suffix, draw in wanted
        ]
    except charts.ChartsUnavailable:
        return CHARTS_MISSING
    return drawn


def _by_image(cells: list[Entry]) -> list[Entry]:
    """An image's bars side by side, machines in turn, so colours read as images.

    Bars are keyed by the cell's name, not its framework: a config's `course-pytorch` and the
    built-in `pytorch` are two images of one framework, each with its own bar.
    """
    order = list(dict.fromkeys(e.record.name for e in cells))
    return sorted(cells, key=lambda e: order.index(e.record.name))


def _bar(
    entry: Entry, merged: bool, value: float, spread: tuple[float, float] | None, text: str
) -> charts.Bar:
    name = entry.record.name
    if entry.record.status != Status.OK:
        text = f"{text}\n{entry.record.status.value}".strip()
    return charts.Bar(
        group=entry.record.variant,
        series=f"{name} @ {entry.machine}" if merged else name,
        value=value,
        spread=spread,
        text=text,
        colour=name,
        hatch=entry.machine,
    )


def _time(record: CellRecord) -> tuple[float, tuple[float, float] | None, str]:
    stats = build_summary(record)
    if stats.median is None:
        return 0.0, None, ""
    median = build_median(record) or 0.0
    spread = None
    if stats.n > 1 and stats.ci_low is not None and stats.ci_high is not None:
        spread = (stats.ci_low, stats.ci_high)
    return median, spread, fmt.seconds(median)


def _size_gb(record: CellRecord) -> tuple[float, None, str]:
    size = record.image.size_bytes if record.image else None
    return (size or 0) / 1e9, None, "" if size is None else fmt.size(size)


def _stacked_chart(stacks: list[charts.Stack]) -> Callable[[Path], Path]:
    title = "Where the run's wall time went"
    return lambda path: charts.stacked_bars(path, stacks, title=title, ylabel="seconds")


def write_output(
    path: Path,
    text: Callable[[list[tuple[str, str]] | str], str],
    draw: Callable[[Path], list[tuple[str, str]] | str] | None,
    what: str = "the report",
) -> Path:
    """Write `text(charts)` to `path`, the charts `draw` makes next to it first (or the reason
    there are none); a folder that cannot be written is the user's to fix."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text(draw(path) if draw else "not drawn"))
    except OSError as exc:
        raise UsageError(
            f"cannot write {what} to {path}: {exc.strerror}", tip="pick a writable -o FILE"
        ) from None
    return path


def write_report(
    path: Path,
    runs: Sequence[RunResults],
    format_: str = "markdown",
    draw: bool = True,
) -> Path:
    """Write the report (and, for Markdown, its charts next to it); returns its path."""
    charts_for = (
        (lambda report: draw_charts(runs, report)) if draw and format_ == "markdown" else None
    )
    return write_output(path, lambda links: render(runs, format_, links), charts_for)
