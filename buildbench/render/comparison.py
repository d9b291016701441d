"""`buildbench compare`'s output: an aligned text table, or Markdown for a CI job summary."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from buildbench.analyze.compare import LEGEND, Row, Thresholds, environment_warnings, verdict
from buildbench.record import RunInfo
from buildbench.render import fmt
from buildbench.render.markdown import markdown_table

HEADERS = ["mark", "cell", "metric", "baseline", "current", "ratio", "significance"]


def render_comparison(
    rows: list[Row],
    baseline: Sequence[RunInfo],
    current: RunInfo,
    thresholds: Thresholds,
    format_: str = "text",
) -> str:
    """The comparison as an aligned text table, or Markdown for a CI job summary."""
    table = [
        [
            row.mark,
            row.cell,
            row.metric,
            row.baseline,
            row.current,
            fmt.ratio(row.ratio),
            row.evidence,
        ]
        for row in rows
    ]
    newest = baseline[-1]
    runs_line = [
        f"baseline: {newest.run_id} on {newest.machine} ({newest.started_at})"
        + (f" and {len(baseline) - 1} earlier run(s), samples pooled" if len(baseline) > 1 else ""),
        f"current:  {current.run_id} on {current.machine} ({current.started_at})",
    ]
    limits = (
        f"worse means ratio > {thresholds.slowdown:g} for times (and significant at "
        f"{thresholds.alpha:g}), > {thresholds.growth:g} for sizes"
    )
    warnings = [f"warning: {w}" for w in environment_warnings(newest, current)]
    if format_ == "markdown":
        body = markdown_table(table, HEADERS)
        head = "\n".join(f"- {line}" for line in [*runs_line, limits, *warnings])
        return f"## buildbench compare: {verdict(rows)}\n\n{head}\n\n{body}\n\n{LEGEND}.\n"
    body = tabulate(table, headers=HEADERS, tablefmt="simple", disable_numparse=True)
    lines = [*runs_line, limits, *warnings, "", body, "", LEGEND, verdict(rows)]
    return "\n".join(lines) + "\n"
