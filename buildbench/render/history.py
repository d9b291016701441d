"""`buildbench history`'s output: a trend table and the shifts (Markdown, fit for a CI job
summary), the same as CSV or JSON rows, and one PNG trend chart per metric."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from buildbench.analyze.changepoints import Shift
from buildbench.analyze.explain import Explanation, SeriesKey, explain_series
from buildbench.analyze.history import MIN_SIZE, Restart, Series, by_machine, regressions
from buildbench.render import charts, fmt
from buildbench.render.explain import series_cause, series_headline, series_why
from buildbench.render.markdown import markdown_table
from buildbench.results import RunResults

FORMATS = ("markdown", "json", "csv")
JSON_FORMAT = "buildbench-history/2"  # 2: busy runs are rows (value null)
METHOD = (
    "Shifts: change points of each series (E-divisive means, permutation test at 5%, at least "
    f"{MIN_SIZE} runs a segment); the run named is the first of the new level. A series restarts "
    "where the inputs changed (Dockerfile or build-args, builder, base image, smoke test, wheel "
    "mode): that run is labelled with what changed, and shifts are searched between restarts "
    "only. The newest run fails the gate where a worse shift it reveals passes the threshold (the "
    "runs' own A/A spread before it, the largest ratio between two of them, at least the minimum "
    "effect; the default below 5 runs) and is significant (t test of the log values after the "
    "shift against those before, Benjamini-Hochberg over every series the run judges). A run "
    "whose timed phase shared a busy machine (others used over a quarter of the engine host's "
    "CPU) is left out of that series."
)


def _shift_text(series: Series, shift: Shift) -> str:
    point = series.run_of(shift)
    change = f"{(shift.ratio - 1):+.0%}" if shift.ratio != float("inf") else "from 0"
    unit = series.metric.unit
    values = f"{fmt.metric_value(unit, shift.before)} -> {fmt.metric_value(unit, shift.after)}"
    return f"`{point.run_id}`: {change} ({values})"


def _restart_text(series: Series, restart: Restart) -> str:
    return f"`{series.run_of(restart).run_id}`: restarts ({', '.join(restart.changed)} changed)"


def _changes_text(series: Series) -> str:
    found = [(shift.index, _shift_text(series, shift)) for shift in series.shifts]
    found += [(restart.index, _restart_text(series, restart)) for restart in series.restarts]
    texts = [text for _, text in sorted(found, key=lambda item: item[0])]
    if series.busy:
        every = "every run " if not series.points else ""
        runs = ", ".join(f"`{run}`" for run in series.busy)
        texts.append(f"{every}left out, busy machine: {runs}")
    return "; ".join(texts) or "-"


def _verdict_text(series: Series) -> str:
    if series.regression is None or series.verdict is None:
        return ""
    verdict = series.verdict
    p = "" if verdict.p_value is None else f", p={verdict.p_value:.2g}"
    return (
        f"**worse, starting at the newest run** (x{verdict.shift.ratio:.2f} > "
        f"{verdict.threshold:.2f}{p})"
    )


def trend_table(series: Sequence[Series], machines: int) -> str:
    rows = []
    for s in series:
        values, unit = s.values, s.metric.unit
        rows.append(
            [
                *([s.machine] if machines > 1 else []),
                s.cell,
                s.metric.name,
                len(values),
                *(
                    (
                        fmt.metric_value(unit, values[0]),
                        fmt.metric_value(unit, values[-1]),
                        f"{fmt.metric_value(unit, min(values))} - "
                        f"{fmt.metric_value(unit, max(values))}",
                    )
                    if values
                    else ("-", "-", "-")  # every run was busy
                ),
                _changes_text(s),
                _verdict_text(s),
            ]
        )
    headers = [*(["machine"] if machines > 1 else []), "cell", "metric", "runs", "first"]
    headers += ["newest", "range", "shifts (run: change)", "verdict"]
    return markdown_table(rows, headers)


def render_markdown(
    runs: Sequence[RunResults],
    series: Sequence[Series],
    chart_links: list[tuple[str, str]] | str,
    explained: Mapping[SeriesKey, Explanation] | None = None,
) -> str:
    machines = by_machine(runs)
    span = ", ".join(
        f"{machine}: {len(found)} runs, {found[0].info.started_at} to {found[-1].info.started_at}"
        for machine, found in machines.items()
    )
    worse = regressions(series)
    verdict = (
        f"REGRESSION: the newest run starts a worse segment in {len(worse)} series"
        if worse
        else "no regression at the newest run"
    )
    if isinstance(chart_links, str):
        charts_text = f"Charts {chart_links}."
    else:
        charts_text = "\n".join(f"![{title}]({path})" for title, path in chart_links)
    explained = explained or {}
    first = "".join(f"**{fmt.md_cell(line)}**\n\n" for line in series_headline(series, explained))
    why = series_why(series, explained)
    return (
        f"# buildbench history: {verdict}\n\n{first}{span}.\n\n"
        + trend_table(series, len(machines))
        + ("\n\n## Why\n\n" + "\n".join(why) if why else "")
        + f"\n\n{METHOD}\n\n"
        + f"## Trends\n\n{charts_text}\n"
    )


def rows(
    series: Sequence[Series],
    runs: Sequence[RunResults] = (),
    explained: Mapping[SeriesKey, Explanation] | None = None,
) -> list[dict[str, object]]:
    """One row per run of each series, with the shift that starts there (if any) and its cause;
    a run left out as busy is a row too, with no value (its start time found in `runs`)."""
    started = {run.info.run_id: run.info.started_at for run in runs}
    explained = explained or {}
    found = []
    for s in series:
        starts = {shift.index: shift for shift in s.shifts}
        restarts = {restart.index: restart for restart in s.restarts}
        found_here = []
        for index, point in enumerate(s.points):
            shift, restart = starts.get(index), restarts.get(index)
            found_here.append(
                {
                    "machine": s.machine,
                    "cell": s.cell,
                    "metric": s.metric.key,
                    "run_id": point.run_id,
                    "started_at": point.started_at,
                    "value": point.value,
                    "config_hash": point.config_hash,
                    "shift_ratio": shift.ratio if shift else None,
                    "regression": bool(s.regression and s.regression.index == index),
                    "restart": ", ".join(restart.changed) if restart else None,
                    "busy": False,
                    "cause": series_cause(explained, s, index),
                }
            )
        for run_id in s.busy:
            found_here.append(
                {
                    "machine": s.machine,
                    "cell": s.cell,
                    "metric": s.metric.key,
                    "run_id": run_id,
                    "started_at": started.get(run_id),
                    "value": None,
                    "config_hash": None,
                    "shift_ratio": None,
                    "regression": False,
                    "restart": None,
                    "busy": True,
                    "cause": None,
                }
            )
        found += sorted(found_here, key=lambda row: str(row["started_at"] or row["run_id"]))
    return found


def render(
    runs: Sequence[RunResults],
    series: Sequence[Series],
    format_: str,
    chart_links: list[tuple[str, str]] | str,
) -> str:
    explained = explain_series(series, runs)
    if format_ == "csv":
        return pd.DataFrame(rows(series, runs, explained)).to_csv(index=False)
    if format_ == "json":
        document = {
            "format": JSON_FORMAT,
            "regressions": [
                {"machine": s.machine, "cell": s.cell, "metric": s.metric.key}
                for s in regressions(series)
            ],
            "why": series_headline(series, explained),
            "method": METHOD,
            "busy": [
                {"machine": s.machine, "cell": s.cell, "metric": s.metric.key, "run_id": run}
                for s in series
                for run in s.busy
            ],
            "series": rows(series, runs, explained),
        }
        return json.dumps(document, indent=2) + "\n"
    return render_markdown(runs, series, chart_links, explained)


def draw(series: Sequence[Series], report: Path) -> list[tuple[str, str]] | str:
    """One PNG per metric next to the report: a line per cell, shifts marked."""
    by_metric: dict[str, list[Series]] = {}
    for s in series:
        by_metric.setdefault(s.metric.key, []).append(s)
    drawn = []
    try:
        for key, group in by_metric.items():
            lines = [
                charts.Line(
                    label=f"{s.cell} @ {s.machine}",
                    values=s.values,
                    marks=[shift.index for shift in s.shifts],
                )
                for s in group
                if s.points  # a series whose every run was busy has no line
            ]
            if not lines:
                continue
            title = f"{group[0].metric.name} per run"
            path = report.with_name(f"{report.stem}-{key}.png")
            charts.trend(path, lines, title=title, ylabel=_unit(group[0]))
            drawn.append((title, path.name))
    except charts.ChartsUnavailable:
        return "skipped: matplotlib is not installed (pip install 'buildbench[report]')"
    return drawn


def _unit(series: Series) -> str:
    return "bytes" if series.metric.kind == "size" else "seconds"
