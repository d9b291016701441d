"""`buildbench compare`'s output: an aligned text table, Markdown for a CI job summary, or a
JSON document (or CSV rows) for a dashboard.

The JSON document is a contract: `format` names its version, and keys are only ever added.
"""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Sequence
from typing import Any

import pandas as pd
from tabulate import tabulate

from buildbench.analyze.compare import (
    LEGEND,
    MEANINGS,
    METHOD,
    Row,
    Thresholds,
    environment_warnings,
    regressions,
    verdict,
)
from buildbench.analyze.explain import Explained
from buildbench.analyze.metrics import METRIC_BY_KEY
from buildbench.record import RunInfo
from buildbench.render import explain, fmt
from buildbench.render.markdown import markdown_table

FORMATS = ("text", "markdown", "json", "csv")
JSON_FORMAT = "buildbench-compare/1"
HEADERS = ["mark", "cell", "metric", "baseline", "current", "ratio", "threshold", "significance"]


def render_comparison(
    rows: list[Row],
    baseline: Sequence[RunInfo],
    current: RunInfo,
    thresholds: Thresholds,
    format_: str = "text",
    explained: Explained | None = None,
) -> str:
    """The comparison in one of FORMATS; with `explained`, why each flagged metric moved."""
    explained = explained or Explained({})
    if format_ == "json":
        found = document(rows, baseline, current, thresholds)
        explain.add_to_document(found, rows, explained)
        return json.dumps(found, indent=2) + "\n"
    if format_ == "csv":
        buffer = io.StringIO()
        data = [{**_row_json(row), "cause": explain.row_cause(row, explained)} for row in rows]
        pd.DataFrame(data).to_csv(buffer, index=False)
        return buffer.getvalue()
    table = [
        [
            row.mark,
            row.cell,
            row.metric,
            shown(row, row.baseline, row.baseline_value),
            shown(row, row.current, row.current_value),
            fmt.ratio(row.ratio),
            "" if row.threshold is None else f"{row.threshold:.2f}",
            row.evidence,
        ]
        for row in rows
    ]
    newest = baseline[-1]
    runs_line = [
        f"baseline: {newest.run_id} on {newest.machine} ({newest.started_at})"
        + (f" and {len(baseline) - 1} earlier run(s)" if len(baseline) > 1 else ""),
        f"current:  {current.run_id} on {current.machine} ({current.started_at})",
    ]
    limits = (
        "worse means ratio > the row's threshold and significant (against 3 or more baseline "
        f"runs: at a false discovery rate of {thresholds.fdr:g} over the run; else the samples "
        f"at {thresholds.alpha:g}); "
        f"default thresholds {thresholds.slowdown:g} for build time, "
        f"{thresholds.smoke_slowdown:g} for latency and cold start, {thresholds.growth:g} for sizes"
    )
    warnings = [f"warning: {w}" for w in environment_warnings(newest, current)]
    method = textwrap.fill(f"method: {METHOD}", width=100)
    why = explain.why(rows, explained, markdown=format_ == "markdown")
    if format_ == "markdown":
        body = markdown_table(table, HEADERS)
        head = "\n".join(f"- {line}" for line in [*runs_line, limits, *warnings])
        first = "".join(
            f"**{fmt.md_cell(line)}**\n\n" for line in explain.headline(rows, explained)
        )
        details = "### Why\n\n" + "\n".join(why) + "\n\n" if why else ""
        return (
            f"## buildbench compare: {verdict(rows)}\n\n{first}{head}\n\n{body}\n\n{details}"
            f"{LEGEND}.\n\n{method}\n"
        )
    body = tabulate(table, headers=HEADERS, tablefmt="simple", disable_numparse=True)
    why_block = ["why:", *why, ""] if why else []
    lines = [*runs_line, limits, *warnings, "", body, "", *why_block, LEGEND, method, verdict(rows)]
    return "\n".join(lines) + "\n"


def shown(row: Row, text: str, value: float | None) -> str:
    """A metric row's value in its metric's unit; a status row's own text."""
    metric = METRIC_BY_KEY.get(row.metric_key)
    return fmt.metric_value(metric.unit, value) if metric else text


def _run_json(info: RunInfo) -> dict[str, Any]:
    return {"run_id": info.run_id, "machine": info.machine, "started_at": info.started_at}


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "mark": row.mark,
        "meaning": MEANINGS[row.mark],
        "cell": row.cell,
        "metric": row.metric,
        "metric_key": row.metric_key or None,
        "baseline": shown(row, row.baseline, row.baseline_value),
        "current": shown(row, row.current, row.current_value),
        "baseline_value": row.baseline_value,
        "current_value": row.current_value,
        "ratio": row.ratio,
        "threshold": row.threshold,
        "p_value": row.p_value,
        "evidence": row.evidence,
        "baseline_runs": row.baseline_runs,
        "cpu_others_share": row.cpu_others_share,
        "regressed": row.regressed,
    }


def document(
    rows: list[Row], baseline: Sequence[RunInfo], current: RunInfo, thresholds: Thresholds
) -> dict[str, Any]:
    """The comparison as a dashboard reads it: the runs, the rules and a row per metric."""
    return {
        "format": JSON_FORMAT,
        "verdict": verdict(rows),
        "regressed": bool(regressions(rows)),
        "baseline": [_run_json(info) for info in baseline],
        "current": _run_json(current),
        "thresholds": {
            "build_slowdown": thresholds.slowdown,
            "smoke_slowdown": thresholds.smoke_slowdown,
            "growth": thresholds.growth,
            "min_effect": thresholds.min_effect,
            "alpha": thresholds.alpha,
            "fdr": thresholds.fdr,
        },
        "method": METHOD,
        "warnings": environment_warnings(baseline[-1], current),
        "rows": [_row_json(row) for row in rows],
    }
