"""The report's floor (`--slim`): per cell, the original's size, what the static findings could
save, what inference touched, and the slim image that passed the same smoke test; then what the
trace shows could go, with the evidence."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from buildbench.analyze.course import Entry, entries
from buildbench.analyze.stats import latency_quantiles, summarize
from buildbench.record import CellRecord, SlimCandidate, SmokeResult, model_of
from buildbench.render import fmt
from buildbench.results import RunResults

_SHOWN_OWNERS = 3


def _table(rows: list[list[str]], headers: list[str]) -> str:
    cells = [[fmt.md_cell(value) for value in row] for row in rows]
    return tabulate(cells, headers=headers, tablefmt="github", disable_numparse=True)


def slim_section(runs: Sequence[RunResults]) -> str:
    """The floor table and the never-touched findings; empty for runs without --slim."""
    cells = [e for e in entries(runs) if e.record.trace is not None]
    if not cells:
        return ""
    parts = [
        "## What inference needs (--slim)",
        _table([_floor_row(e.record) for e in cells], _FLOOR_HEADERS),
        "\n".join(_touched_line(e) for e in cells),
    ]
    if untouched := _untouched_rows(cells):
        parts.append("### What could go, as the trace shows")
        parts.append(_table(untouched, ["cell", "never touched", "bytes", "evidence"]))
    if notes := [f"- {e.record.key}: {line}" for e in cells for line in _notes(e.record)]:
        parts.append("\n".join(["What the trace could not see:", *notes]))
    parts.append(
        "Traced: every file the smoke test's Python processes opened, listed, mapped "
        "(/proc/self/maps) or started, through an audit hook on a read-only volume; the "
        "candidate keeps those files, the symlinks and directories on the way, and the dynamic "
        "loader's files, with the original's config. It counts as a saving only when the same "
        "smoke test passes on it with parity; original/slim is the ratio of the engine's sizes."
    )
    return "\n\n".join(parts)


_FLOOR_HEADERS = [
    "cell",
    "original",
    "static findings",
    "inference touched",
    "slim",
    "compressed (orig → slim)",
    "original/slim",
    "start-up (orig → slim)",
    "p50 latency (orig → slim)",
    "candidate",
]


def _floor_row(record: CellRecord) -> list[str]:
    trace, candidate = record.trace, record.slim
    assert trace is not None
    image = record.image
    findings = sum(f.bytes for f in record.contents.findings) if record.contents else None
    proven = candidate is not None and candidate.status == "proven"
    slim_size = candidate.size_bytes if candidate else None
    ratio = image.size_bytes / slim_size if image and slim_size and proven else None
    return [
        record.key,
        fmt.size(image.size_bytes if image else None),
        fmt.size(findings),
        fmt.size(trace.touched_bytes) if trace.note is None else "nothing traced",
        fmt.size(slim_size) if candidate else "-",
        f"{fmt.size(image.compressed_size_bytes if image else None)} → "
        f"{fmt.size(candidate.compressed_size_bytes if candidate else None)}",
        fmt.times(ratio) if ratio else "-",
        _pair(_startup(record.smoke), _startup(candidate.smoke if candidate else None), "s"),
        _pair(_latency(record.smoke), _latency(candidate.smoke if candidate else None), "ms"),
        _verdict(candidate, trace.note),
    ]


def _verdict(candidate: SlimCandidate | None, note: str | None) -> str:
    if candidate is None:
        return f"none: {note}" if note else "none"
    return f"{candidate.status}: {candidate.message}"


def _startup(smoke: SmokeResult | None) -> float | None:
    if smoke is None or not smoke.cold_start_seconds:
        return None
    return summarize(smoke.cold_start_seconds).median


def _latency(smoke: SmokeResult | None) -> float | None:
    """p50 at the smallest batch size."""
    latency = model_of(smoke).latency
    if not latency:
        return None
    batch = min(latency, key=lambda b: int(b) if b.isdigit() else 0)
    return latency_quantiles(latency[batch].samples).p50


def _pair(original: float | None, slim: float | None, unit: str) -> str:
    show = fmt.ms if unit == "ms" else fmt.seconds
    return f"{show(original)} → {show(slim)}"


def _touched_line(entry: Entry) -> str:
    record = entry.record
    trace = record.trace
    assert trace is not None
    if trace.note is not None:
        return f"- {record.key}: {trace.note}"
    share = trace.touched_bytes / trace.image_bytes if trace.image_bytes else None
    owners = sorted(trace.distributions, key=lambda d: -d.touched_bytes)[:_SHOWN_OWNERS]
    by_owner = ", ".join(
        f"{d.name} {fmt.size(d.touched_bytes)} of {fmt.size(d.bytes)}" for d in owners
    )
    layers = sorted(trace.layers, key=lambda layer: -layer.touched_bytes)[:1]
    layer = f"; most from `{fmt.one_line(layers[0].name, 40)}`" if layers else ""
    return (
        f"- {record.key}: inference touched {fmt.size(trace.touched_bytes)} of "
        f"{fmt.size(trace.image_bytes)} ({fmt.percent(share)}), {trace.touched_files} files "
        f"from {_count(trace.processes, 'traced process', 'es')} in "
        f"{_count(trace.containers, 'container')}"
        + (f"; by distribution: {by_owner}" if by_owner else "")
        + layer
    )


def _count(n: int, noun: str, plural: str = "s") -> str:
    return f"{n} {noun}{'' if n == 1 else plural}"


def _untouched_rows(cells: list[Entry]) -> list[list[str]]:
    rows = []
    for entry in cells:
        trace = entry.record.trace
        if trace is None or trace.note is not None:
            continue
        for item in trace.untouched:
            evidence = ", ".join(f"`{p}`" for p in item.paths) or "0 bytes of its files touched"
            rows.append(
                [entry.record.key, f"{item.kind} {item.name}", fmt.size(item.bytes), evidence]
            )
    return rows


def _notes(record: CellRecord) -> list[str]:
    trace = record.trace
    return list(trace.untraced) if trace else []
