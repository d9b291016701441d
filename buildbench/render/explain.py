"""Explanations in words: the largest cause of a change on one line ("+27.00 MB: sympy 1.13.3
added by step 9 `RUN pip install ...`"), the details under it, and the same as JSON.

Shared by `compare` (render/comparison.py) and `history` (render/history.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from buildbench.analyze.compare import NOT_COMPARABLE, Row
from buildbench.analyze.explain import Difference, Explained, Explanation, SeriesKey
from buildbench.analyze.history import Series
from buildbench.analyze.steps import StepChange
from buildbench.render import fmt
from buildbench.render.sizewords import cause as size_cause
from buildbench.render.sizewords import change_json, change_words, instruction, parts

DETAILS_SHOWN = 5  # items of each kind listed under a cause
DIFF_LINES = 20  # lines of a Dockerfile diff shown in text


def _seconds(delta: float) -> str:
    return ("+" if delta > 0 else "") + fmt.seconds(delta)


def _step_words(change: StepChange) -> str:
    index = change.new_index if change.new_index is not None else change.old_index
    step = f"step {index} " if index is not None else ""
    old, new = fmt.seconds(change.old_seconds), fmt.seconds(change.new_seconds)
    if change.old_seconds is None:
        how = f"added, {new}"
    elif change.new_seconds is None:
        how = f"removed, was {old}"
    else:
        how = f"{old} -> {new}"
    if change.old_instruction is not None:
        how = f"(was {instruction(change.old_instruction)}) {how}"
    return f"{_seconds(change.delta)}: {step}{instruction(change.instruction)} {how}"


def _pair(values: tuple[float, float]) -> str:
    return f"{fmt.seconds(values[0])} -> {fmt.seconds(values[1])}"


def difference_words(found: Difference) -> str:
    if found.lines:
        return (
            f"{found.name} changed ({found.old} -> {found.new})"
            if found.old != found.new
            else f"{found.name} changed"
        )
    return f"{found.name} {found.old} -> {found.new}"


def _busy_words(explanation: Explanation) -> str | None:
    old, new = explanation.busy
    if old is None and new is None:
        return None
    return f"others used {fmt.percent(old)} -> {fmt.percent(new)} of the engine host's CPU"


def cause(explanation: Explanation, delta: float | None = None) -> str:
    """The largest cause in words: what a flagged row's line ends with."""
    sizes = explanation.sizes
    if sizes is not None:
        # The contents are known uncompressed: say so beside a compressed size's change.
        packed = explanation.metric.key == "compressed_size_bytes" and sizes.before.read
        return size_cause(sizes) + (" (uncompressed bytes)" if packed else "")
    if explanation.steps:
        return _step_words(explanation.steps[0])
    found = []
    if explanation.step_totals and explanation.build_totals:
        steps, builds = explanation.step_totals, explanation.build_totals
        found.append(
            f"no step's time changed (the steps took {_pair(steps)} of a build of "
            f"{_pair(builds)}: the rest is the engine's and the context's)"
        )
    if explanation.phases and explanation.phases[0].delta:
        phase = explanation.phases[0]
        moved = f"{fmt.seconds(phase.old)} -> {fmt.seconds(phase.new)}"
        found.append(f"{_seconds(phase.delta)}: {phase.name} {moved}")
    found += [difference_words(v) for v in explanation.versions[:2]]
    if not found:
        found += [
            difference_words(c) for c in [*explanation.conditions, *explanation.environment][:2]
        ]
    if not found and (busy := _busy_words(explanation)):
        found.append(busy)
    return "; ".join(found) or "nothing recorded differs (same steps, versions and conditions)"


def details(explanation: Explanation) -> list[str]:
    """The lines under the cause: every kind of item that moved, the conditions that differ."""
    lines = []
    sizes = explanation.sizes
    if sizes is not None and sizes.before.read and sizes.after.read:
        lines.append(f"size {parts(sizes)}")
        for name, changes in (
            ("distributions", sizes.distributions),
            ("packages", sizes.packages),
            ("layers", sizes.layers),
            ("waste", sizes.findings),
        ):
            if changes:
                shown = "; ".join(change_words(c) for c in changes[:DETAILS_SHOWN])
                more = len(changes) - DETAILS_SHOWN
                lines.append(f"{name}: {shown}" + (f"; {more} more" if more > 0 else ""))
    if explanation.steps:
        lines.append("steps: " + "; ".join(_step_words(c) for c in explanation.steps))
    moved = [
        f"{p.name} {fmt.seconds(p.old)} -> {fmt.seconds(p.new)}"
        for p in explanation.phases
        if fmt.seconds(p.old) != fmt.seconds(p.new)
    ]
    if moved:
        lines.append("start-up phases: " + "; ".join(moved))
    if explanation.versions:
        lines.append("versions: " + "; ".join(difference_words(v) for v in explanation.versions))
    if busy := _busy_words(explanation):
        lines.append(busy)
    conditions = [*explanation.conditions, *explanation.environment]
    if conditions:
        lines.append("conditions: " + "; ".join(difference_words(c) for c in conditions))
    return lines


def dockerfile_lines(explanation: Explanation) -> list[str]:
    """The Dockerfile's unified diff, cut to DIFF_LINES; empty when it did not change."""
    lines: list[str] = []
    for condition in explanation.conditions:
        if condition.lines:
            more = len(condition.lines) - DIFF_LINES
            lines += condition.lines[:DIFF_LINES]
            lines += [f"... {more} more lines"] if more > 0 else []
    return lines


def explanation_json(explanation: Explanation) -> dict[str, Any]:
    sizes = explanation.sizes
    return {
        "cause": cause(explanation),
        "sizes": None
        if sizes is None
        else {
            "delta_bytes": sizes.delta,
            "parts": [{"name": p.name, "delta_bytes": p.delta} for p in sizes.parts],
            "changes": [change_json(c) for c in [*sizes.items(), *sizes.layers, *sizes.findings]],
        },
        "steps": [
            {
                "instruction": c.instruction,
                "old_index": c.old_index,
                "new_index": c.new_index,
                "old_seconds": c.old_seconds,
                "new_seconds": c.new_seconds,
            }
            for c in explanation.steps
        ],
        "phases": [
            {"name": p.name, "old_seconds": p.old, "new_seconds": p.new} for p in explanation.phases
        ],
        "versions": [_difference_json(v) for v in explanation.versions],
        "cpu_others_share": list(explanation.busy),
        "conditions": [_difference_json(c) for c in explanation.conditions],
        "environment": [_difference_json(c) for c in explanation.environment],
    }


def _difference_json(found: Difference) -> dict[str, Any]:
    return {
        "name": found.name,
        "old": found.old,
        "new": found.new,
        "diff": list(found.lines) or None,
    }


# ---------------------------------------------------------------------------------------------
# A comparison's rows


def _row_head(row: Row, explanation: Explanation, mark: str = "{}") -> str:
    shown = mark.format(row.mark)
    head = f"{shown} {row.cell} {row.metric} x{fmt.ratio(row.ratio)}: {cause(explanation)}"
    if row.mark == NOT_COMPARABLE and explanation.conditions:
        changed = ", ".join(difference_words(c) for c in explanation.conditions[:2])
        head += f" (not comparable: {changed})"
    return head


def headline(rows: Sequence[Row], explained: Explained) -> list[str]:
    """One line per regression, ending with its largest cause: what a reader sees first."""
    found = []
    for row in rows:
        explanation = explained.of(row)
        if row.regressed and explanation is not None:
            found.append(_row_head(row, explanation))
    return found


def why(rows: Sequence[Row], explained: Explained, markdown: bool = False) -> list[str]:
    """Every flagged row's cause and details, in the table's order."""
    lines = []
    shown: set[str] = set()  # cells whose Dockerfile diff is shown: once each
    for row in rows:
        explanation = explained.of(row)
        if explanation is None:
            continue
        head = _row_head(row, explanation, "`{}`" if markdown else "{}")
        more = details(explanation)
        diff = [] if row.cell in shown else dockerfile_lines(explanation)
        if diff:
            shown.add(row.cell)
        if markdown:
            lines.append(f"- {fmt.md_cell(head)}")
            lines += [f"  - {fmt.md_cell(line)}" for line in more]
            if diff:
                lines += ["", "  ```diff", *(f"  {line}" for line in diff), "  ```"]
        else:
            lines.append(head)
            lines += [f"    {line}" for line in more] + [f"      {line}" for line in diff]
    return lines


def add_to_document(document: dict[str, Any], rows: Sequence[Row], explained: Explained) -> None:
    """compare's JSON document, with `why` (each regression's line) and each row's
    `explanation` (null where none): keys added, none changed."""
    document["why"] = headline(rows, explained)
    for row, found in zip(rows, document["rows"], strict=True):
        explanation = explained.of(row)
        found["explanation"] = None if explanation is None else explanation_json(explanation)


def row_cause(row: Row, explained: Explained) -> str | None:
    explanation = explained.of(row)
    return None if explanation is None else cause(explanation)


# ---------------------------------------------------------------------------------------------
# History's shifts and restarts


def series_cause(explained: Mapping[SeriesKey, Explanation], s: Series, index: int) -> str | None:
    explanation = explained.get((s.machine, s.cell, s.metric.key, index))
    return None if explanation is None else cause(explanation)


def series_headline(
    series: Sequence[Series], explained: Mapping[SeriesKey, Explanation]
) -> list[str]:
    """One line per regression the gate fails on, ending with its largest cause."""
    found = []
    for s in series:
        if s.regression is None:
            continue
        why_ = series_cause(explained, s, s.regression.index)
        run = s.run_of(s.regression).run_id
        found.append(
            f"{s.cell} {s.metric.name} worse from `{run}` (x{s.regression.ratio:.2f})"
            + (f": {why_}" if why_ else "")
        )
    return found


def series_why(series: Sequence[Series], explained: Mapping[SeriesKey, Explanation]) -> list[str]:
    """Markdown bullets: each shift and restart with its cause and details."""
    lines = []
    for s in series:
        starts = {x.index: f"x{x.ratio:.2f}" for x in s.shifts}
        starts |= {r.index: f"restarts ({', '.join(r.changed)} changed)" for r in s.restarts}
        for index in sorted(starts):
            explanation = explained.get((s.machine, s.cell, s.metric.key, index))
            if explanation is None:
                continue
            run = s.points[index].run_id
            head = f"{s.cell} {s.metric.name}, `{run}` {starts[index]}: {cause(explanation)}"
            lines.append(f"- {fmt.md_cell(head)}")
            lines += [f"  - {fmt.md_cell(line)}" for line in details(explanation)]
            diff = dockerfile_lines(explanation)
            if diff:
                lines += ["", "  ```diff", *(f"  {line}" for line in diff), "  ```"]
    return lines
