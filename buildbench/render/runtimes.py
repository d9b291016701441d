"""The report's first table and its chart: every runtime of the run against PyTorch, per
variant, with the course's figures beside ONNX Runtime's. The runtimes are the registry's
(measure/runtimes), so that one added later has its row with no edit here."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from buildbench.analyze.course import COURSE, COURSE_IMAGES
from buildbench.analyze.derived import cell_parity
from buildbench.analyze.runtimes import BASELINE, NOT_APPLICABLE, Figure, RuntimeRow, runtime_rows
from buildbench.measure import runtimes as registry
from buildbench.measure.smoke.program.parity import ACCURACY_NOTE
from buildbench.record import OutputParity, model_of
from buildbench.render import charts, fmt
from buildbench.render.mdparts import machine_column, markdown_table
from buildbench.results import RunResults
from buildbench.status import NO_IMAGE

TITLE = "## Runtimes against PyTorch"
CHART_TITLE = "Image size against cold start"
CHART_SUFFIX = "size-cold-start"
_TOP1 = re.compile(r"top-1 agrees on (\d+) of (\d+)")


def rows(runs: Sequence[RunResults]) -> list[RuntimeRow]:
    """The registry's runtimes, read when asked: one added later has its rows."""
    found = registry.RUNTIMES
    missing = {r.name: r.missing_variant for r in found if r.missing_variant}
    return runtime_rows(runs, [r.name for r in found], missing)


def runtimes_section(runs: Sequence[RunResults], chart: str | None) -> str:
    """The table, the reasons behind its words, and the chart under it where one was drawn."""
    found = rows(runs)
    if not found:
        return ""
    batches = list(found[0].latency)
    table = [
        [
            *machine_column(runs, row.machine),
            row.variant,
            row.runtime,
            _shown(row.build, fmt.seconds) + _course_build(row),
            _shown(row.size, fmt.size) + _course_size(row),
            _shown(row.compressed, fmt.size),
            _shown(row.cold_start, fmt.seconds),
            *(_shown(row.latency[b], fmt.ms) for b in batches),
            parity_text(row),
        ]
        for row in found
    ]
    headers = [*machine_column(runs, "machine"), "variant", "runtime", "build", "size"]
    headers += ["compressed", "cold start", *(f"p50 b={b}" for b in batches)]
    headers += ["parity / accuracy"]
    why = [
        f"- {row.machine + ': ' if len(runs) > 1 else ''}`{row.runtime}/{row.variant}`: "
        f"{fmt.one_line(row.why, 200)}"
        for row in found
        if row.why
    ]
    parts = [
        TITLE,
        _intro(found),
        markdown_table(table, headers),
        *(["Why:\n\n" + "\n".join(why)] if why else []),
        *([f"![{CHART_TITLE}]({chart})"] if chart else []),
    ]
    return "\n\n".join(parts)


def _intro(found: list[RuntimeRow]) -> str:
    text = (
        "Every runtime of the run beside PyTorch, per variant: median build time, image size "
        "and compressed size, cold start (median of fresh containers, start request to first "
        "output), p50 latency of the first model at the smallest and the largest batch, and "
        "parity with the fp32 reference (an int8 form: its accuracy). In brackets, how many "
        "times PyTorch's figure this one is (PyTorch's over this one: above 1.00x faster or "
        "smaller); beside ONNX Runtime, what the course measured on its laptop."
    )
    if not any(row.runtime == BASELINE and row.record for row in found):
        text += " This run has no PyTorch cell to hold the others against."
    return text


def _shown(figure: Figure, show: Callable[[float | None], str]) -> str:
    if figure.value is None:
        return figure.word or "-"
    return show(figure.value) + (f" ({fmt.times(figure.times)})" if figure.times else "")


def _course_build(row: RuntimeRow) -> str:
    course = COURSE.get(row.variant)
    if course is None or row.runtime != COURSE_IMAGES[1]:
        return ""
    return f", course {fmt.times(course.faster)}"


def _course_size(row: RuntimeRow) -> str:
    course = COURSE.get(row.variant)
    if course is None or row.runtime not in COURSE_IMAGES:
        return ""
    if row.runtime == COURSE_IMAGES[0]:
        return f", course {fmt.size(course.pytorch_bytes)}"
    return f", course {fmt.size(course.onnx_bytes)} ({fmt.times(course.smaller)})"


def parity_text(row: RuntimeRow) -> str:
    """The cell's worst parity over its models and batch sizes, or its accuracy figure."""
    if row.record is None or row.record.status in NO_IMAGE:
        return row.build.word or NOT_APPLICABLE  # none, or not the image it claims to be
    smoke = row.record.smoke
    if smoke is None or model_of(smoke).not_applicable:
        return row.cold_start.word or NOT_APPLICABLE
    found = cell_parity(smoke)
    if found is None:
        return row.cold_start.word or smoke.status.value.replace("_", " ")
    verdict = "ok" if found.ok else "FAIL"
    outputs = [
        p
        for one in (smoke, *model_of(smoke).more_models)
        for by_name in model_of(one).outputs.values()
        for p in by_name.values()
    ]
    accuracy = [p for p in outputs if p.note and p.note.startswith(ACCURACY_NOTE)]
    if not accuracy:
        return f"{verdict}, max abs diff {found.max_abs_diff:.1e}"
    return f"{verdict}, accuracy {_accuracy(accuracy)}, max abs diff {found.max_abs_diff:.1e}"


def _accuracy(outputs: list[OutputParity]) -> str:
    """The worst share of values within tolerance, and top-1 agreement summed where told."""
    share = min(1 - p.mismatches / p.count if p.count else 1.0 for p in outputs)
    top1 = [m.groups() for p in outputs if p.note and (m := _TOP1.search(p.note))]
    text = f"{share:.1%} within tolerance"
    if top1:
        text += f", top-1 {sum(int(a) for a, _ in top1)} of {sum(int(n) for _, n in top1)}"
    return text


def chart(runs: Sequence[RunResults]) -> Callable[[Path], Path] | None:
    """Image size against cold start, a labelled point per cell and a marker per variant (the
    cells without both figures named under it); None where no cell has both."""
    found = rows(runs)
    merged = len(runs) > 1
    points = [
        charts.Point(
            label=f"{row.runtime} @ {row.machine}" if merged else row.runtime,
            x=row.cold_start.value,
            y=row.size.value / 1e9,
            marker=row.variant,
            colour=row.runtime,
        )
        for row in found
        if row.size.value is not None and row.cold_start.value is not None
    ]
    if not points:
        return None
    left = [
        f"{row.runtime}/{row.variant} ({row.cold_start.word or row.size.word or '-'})"
        for row in found
        if row.size.value is None or row.cold_start.value is None
    ]
    return lambda path: charts.scatter(
        path,
        points,
        title=CHART_TITLE,
        xlabel="cold start (s, median)",
        ylabel="image size (GB)",
        note="not shown: " + ", ".join(left) if left else "",
    )
