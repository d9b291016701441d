"""The report: a Markdown page people read (tables, the course's ratios, charts), and CSV and
JSON views of the same cells. Several results files (machines, CI jobs) merge into one report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from buildbench import charts, fmt
from buildbench import record as status
from buildbench.errors import UsageError
from buildbench.matrix import FRAMEWORKS as BUILTIN_IMAGES
from buildbench.record import SCHEMA_VERSION, CellRecord, RunInfo, summarize
from buildbench.results import load_results, table

REPORT_MD = "report.md"
# Cells left out of the course comparison: no image, no size, or a "CUDA" image that is not.
LEFT_OUT_OF_RATIOS = (status.BUILD_FAILED, status.MEASURE_FAILED, status.INVALID_VARIANT)
FORMATS = ("markdown", "csv", "json")
STEP_TEXT_WIDTH = 60
SLOWEST_STEPS = 3
NO_GPU = "no GPU"  # how the smoke test words a CUDA image that ran on the CPU
CHARTS_MISSING = "skipped: matplotlib is not installed (pip install 'buildbench[report]')"


@dataclass(frozen=True)
class RunResults:
    """One results file: the run and its cells."""

    info: RunInfo
    records: list[CellRecord]


@dataclass(frozen=True)
class Entry:
    """A cell with the machine it ran on, as the merged report lists it."""

    machine: str
    record: CellRecord


@dataclass(frozen=True)
class Course:
    """What the course exercise measured on its laptop, to put beside our numbers."""

    faster: float
    smaller: float
    pytorch_bytes: int
    onnx_bytes: int


COURSE = {
    "cpu": Course(faster=1.28, smaller=1.94, pytorch_bytes=1_250_000_000, onnx_bytes=647_000_000),
    "cuda": Course(faster=7.0, smaller=8.5, pytorch_bytes=5_540_000_000, onnx_bytes=647_000_000),
}

# ---------------------------------------------------------------------------------------------
# Loading


def load_runs(paths: Sequence[Path]) -> list[RunResults]:
    if not paths:
        raise UsageError(
            "no results given", tip="buildbench report results/<run-id> [more runs ...]"
        )
    return [RunResults(*load_results(path)) for path in paths]


def entries(runs: Sequence[RunResults]) -> list[Entry]:
    return [Entry(label, r) for label, run in labelled(runs) for r in run.records]


def labelled(runs: Sequence[RunResults]) -> list[tuple[str, RunResults]]:
    """Each run with its machine: its host; where one host ran several runs, plus its builder
    when that tells them apart ("vm (buildkit)"), else its run id."""
    hosts = [run.info.host for run in runs]
    builds = [(run.info.host, run.info.builder) for run in runs]
    return [(_label(run.info, hosts, builds), run) for run in runs]


def _label(info: RunInfo, hosts: list[str], builds: list[tuple[str, str]]) -> str:
    if hosts.count(info.host) == 1:
        return info.host
    if builds.count((info.host, info.builder)) == 1:
        return f"{info.host} ({info.builder})"
    return f"{info.host} {info.run_id}"


# ---------------------------------------------------------------------------------------------
# Metrics of one cell (also what `buildbench compare` compares)


def build_median(record: CellRecord) -> float | None:
    return summarize(record.build_seconds)["median"]


def latency(record: CellRecord, quantile: str = "p50", batch: str = "1") -> float | None:
    return ((record.smoke or {}).get("latency") or {}).get(batch, {}).get(quantile)


def cold_start(record: CellRecord) -> float | None:
    return (record.smoke or {}).get("cold_start_seconds")


def parity(record: CellRecord) -> dict[str, Any] | None:
    """The worst parity over batch sizes: `parity_summary`, or `parity` when it is one check."""
    smoke = record.smoke or {}
    if "parity_summary" in smoke:
        return smoke["parity_summary"]
    found = smoke.get("parity")
    return found if isinstance(found, dict) and "ok" in found else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def image_label(record: CellRecord) -> str:
    """The cell's image as the cells table shows it: its name, and its framework if another."""
    if record.framework in (None, record.name):
        return record.name
    return f"{record.name} ({record.framework})"


# ---------------------------------------------------------------------------------------------
# The course comparison


def course_comparison(runs: Sequence[RunResults]) -> list[dict[str, Any]]:
    """Per machine and variant: how many times faster and smaller ONNX Runtime is than PyTorch.

    Only the built-in images count, told by name: a config's own image of either framework
    (the course's `course-pytorch`, say) is another Dockerfile, not the one the ratios are of.
    """
    cells = {
        (e.machine, e.record.variant, e.record.name): e.record
        for e in entries(runs)
        if e.record.name in BUILTIN_IMAGES
    }
    pairs = dict.fromkeys((machine, variant) for machine, variant, _ in cells)
    return [_course_row(machine, variant, cells) for machine, variant in pairs]


def _course_row(
    machine: str, variant: str, cells: dict[tuple[str, str, str], CellRecord]
) -> dict[str, Any]:
    torch, onnx = cells.get((machine, variant, "pytorch")), cells.get((machine, variant, "onnx"))
    torch_s, onnx_s = _ok(torch, build_median), _ok(onnx, build_median)
    torch_b, onnx_b = _ok(torch, _size), _ok(onnx, _size)
    course = COURSE.get(variant)
    return {
        "machine": machine,
        "variant": variant,
        "pytorch_build_seconds": torch_s,
        "onnx_build_seconds": onnx_s,
        "faster": ratio(torch_s, onnx_s),
        "course_faster": course.faster if course else None,
        "pytorch_size_bytes": torch_b,
        "onnx_size_bytes": onnx_b,
        "smaller": ratio(torch_b, onnx_b),
        "course_smaller": course.smaller if course else None,
    }


def _size(record: CellRecord) -> float | None:
    return record.image_size_bytes


def _ok(record: CellRecord | None, metric: Callable[[CellRecord], float | None]) -> float | None:
    """A metric of a cell that built, measured, and is the variant it claims to be."""
    if record is None or record.status in LEFT_OUT_OF_RATIOS:
        return None
    return metric(record)


# ---------------------------------------------------------------------------------------------
# Classic builder vs BuildKit


def builder_comparison(runs: Sequence[RunResults]) -> list[dict[str, Any]]:
    """Per machine and cell that both builders built: median build times and image sizes.

    Machines are hosts here, not run labels: a host's classic and BuildKit runs pair up. Where
    a host built a cell with one builder in several runs, the first of them counts.
    """
    built: dict[tuple[str, str, str], CellRecord] = {}
    for run in runs:
        for r in run.records:
            if r.status != status.BUILD_FAILED and build_median(r) is not None:
                built.setdefault((run.info.host, r.key, r.builder), r)
    rows = []
    for host, key in dict.fromkeys((host, key) for host, key, _ in built):
        classic, buildkit = built.get((host, key, "classic")), built.get((host, key, "buildkit"))
        if classic and buildkit:
            rows.append(_builder_row(host, classic, buildkit))
    return rows


def _builder_row(machine: str, classic: CellRecord, buildkit: CellRecord) -> dict[str, Any]:
    classic_s, buildkit_s = build_median(classic), build_median(buildkit)
    return {
        "machine": machine,
        "cell": classic.key,
        "classic_build_seconds": classic_s,
        "buildkit_build_seconds": buildkit_s,
        "faster": ratio(classic_s, buildkit_s),
        "classic_size_bytes": classic.image_size_bytes,
        "buildkit_size_bytes": buildkit.image_size_bytes,
    }


# ---------------------------------------------------------------------------------------------
# Markdown


def render_markdown(runs: Sequence[RunResults], chart_links: list[tuple[str, str]] | str) -> str:
    """The whole report; `chart_links`: (title, relative path) per chart, or why there are none."""
    cells = entries(runs)
    sections = [
        _title(runs, cells),
        _course_section(runs),
        _builders_section(runs),
        _cells_section(runs, cells),
        _charts_section(chart_links),
        _warnings_section(cells),
        _steps_section(runs, cells),
        _environment_section(runs),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _title(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    failed = sum(e.record.status != status.OK for e in cells)
    counts = f"{len(cells)} cells, {len(cells) - failed} ok, {failed} failed"
    if len(runs) == 1:
        info = runs[0].info
        what = f"Run `{info.run_id}` on {info.host}, started {info.started_at}"
    else:
        names = ", ".join(f"{m} (`{r.info.run_id}`)" for m, r in labelled(runs))
        what = f"{len(runs)} runs merged: {names}"
    return f"# buildbench report\n\n{what}: {counts}."


def markdown_table(rows: list[list[Any]], headers: list[str]) -> str:
    cells = [[fmt.md_cell(str(value)) for value in row] for row in rows]
    return tabulate(cells, headers=headers, tablefmt="github", disable_numparse=True)


def _machine(runs: Sequence[RunResults], machine: str) -> list[str]:
    """The machine column, present only when the report merges several runs."""
    return [machine] if len(runs) > 1 else []


def _course_section(runs: Sequence[RunResults]) -> str:
    rows = [
        [
            *_machine(runs, row["machine"]),
            row["variant"],
            fmt.seconds(row["pytorch_build_seconds"]),
            fmt.seconds(row["onnx_build_seconds"]),
            fmt.times(row["faster"]),
            fmt.times(row["course_faster"]),
            fmt.size(row["pytorch_size_bytes"]),
            fmt.size(row["onnx_size_bytes"]),
            fmt.times(row["smaller"]),
            _course_sizes(row["variant"]),
        ]
        for row in course_comparison(runs)
    ]
    headers = [*_machine(runs, "machine"), "variant", "PyTorch build", "ONNX Runtime build"]
    headers += ["faster", "course", "PyTorch size", "ONNX Runtime size", "smaller", "course"]
    return (
        "## ONNX Runtime vs PyTorch\n\n"
        "How many times faster the ONNX Runtime image builds than the PyTorch one (median "
        "build times) and how many times smaller it is, beside what the course measured on "
        "its laptop.\n\n" + markdown_table(rows, headers)
    )


def _course_sizes(variant: str) -> str:
    course = COURSE.get(variant)
    if course is None:
        return "-"
    sizes = f"{fmt.size(course.pytorch_bytes)} / {fmt.size(course.onnx_bytes)}"
    return f"{fmt.times(course.smaller)} ({sizes})"


# The section's columns: header, the comparison row's key, how its value reads.
BUILDER_COLUMNS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("cell", "cell", str),
    ("classic build", "classic_build_seconds", fmt.seconds),
    ("BuildKit build", "buildkit_build_seconds", fmt.seconds),
    ("BuildKit faster", "faster", fmt.times),
    ("classic size", "classic_size_bytes", fmt.size),
    ("BuildKit size", "buildkit_size_bytes", fmt.size),
]


def _builders_section(runs: Sequence[RunResults]) -> str:
    """Classic builder vs BuildKit, where both built a cell on one machine; else nothing."""
    found = builder_comparison(runs)
    if not found:
        return ""
    machine = [("machine", "machine", str)] if len({r["machine"] for r in found}) > 1 else []
    columns = machine + BUILDER_COLUMNS
    rows = [[show(row[key]) for _, key, show in columns] for row in found]
    return (
        "## Classic builder vs BuildKit\n\n"
        "Median build times of the cells both builders built on the same machine, and how many "
        "times faster BuildKit built them (below 1.00x: slower). Their images may differ "
        "slightly in size.\n\n" + markdown_table(rows, [header for header, _, _ in columns])
    )


CELL_HEADERS = ["framework", "variant", "status", "build", "size", "over base", "compressed"]
CELL_HEADERS += ["layers", "version"]
SMOKE_HEADERS = ["parity", "p50 / p95 b=1", "cold start", "cuda build", "gpu used"]


def _cells_section(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    with_smoke = any(e.record.smoke for e in cells)
    rows = [_cell_row(runs, e, with_smoke) for e in cells]
    headers = [*_machine(runs, "machine"), *CELL_HEADERS, *(SMOKE_HEADERS if with_smoke else [])]
    timings = dict.fromkeys(run.info.timing for run in runs)
    build = "Build: median [min-max] over samples; " + "; ".join(timings) + "."
    return "## Cells\n\n" + markdown_table(rows, headers) + "\n\n" + build


def _cell_row(runs: Sequence[RunResults], entry: Entry, with_smoke: bool) -> list[Any]:
    return [*_machine(runs, entry.machine), *cell_columns(entry.record, with_smoke)]


def cell_columns(r: CellRecord, with_smoke: bool) -> list[Any]:
    """One cell's row under CELL_HEADERS (+ SMOKE_HEADERS): the report's and the terminal's."""
    stats = summarize(r.build_seconds)
    row = [
        image_label(r),
        r.variant,
        r.status,
        fmt.spread(stats["median"], stats["min"], stats["max"], stats["n"] or 0),
        fmt.size(r.image_size_bytes),
        fmt.size(r.bytes_over_base),
        fmt.size(r.compressed_size_bytes),
        "-" if r.layers is None else r.layers,
        r.framework_version or "-",
    ]
    return row + (_smoke_cells(r) if with_smoke else [])


def _smoke_cells(r: CellRecord) -> list[str]:
    smoke = r.smoke or {}
    p50, p95 = latency(r, "p50"), latency(r, "p95")
    return [
        fmt.parity(parity(r)),
        "-" if p50 is None else f"{fmt.ms(p50)} / {fmt.ms(p95)}",
        fmt.seconds(cold_start(r)),
        fmt.flag(smoke.get("cuda_build")),
        fmt.flag(smoke.get("gpu_used")),
    ]


def _charts_section(chart_links: list[tuple[str, str]] | str) -> str:
    if isinstance(chart_links, str):
        return f"## Charts\n\nCharts {chart_links}."
    return "## Charts\n\n" + "\n".join(f"![{title}]({path})" for title, path in chart_links)


def _warnings_section(cells: list[Entry]) -> str:
    lines = [line for e in cells for line in _cell_warnings(e)] + _no_gpu_warnings(cells)
    return "## Warnings\n\n" + ("\n".join(f"- {line}" for line in lines) or "None.")


def _cell_warnings(entry: Entry) -> list[str]:
    r = entry.record
    where = f"`{r.key}` on {entry.machine}"
    found = [f"{where}: {w}" for w in r.warnings if not w.startswith(NO_GPU)]
    if r.status != status.OK:
        found.insert(0, f"{where}: **{r.status}**: {fmt.one_line(r.error or 'no error text', 300)}")
    return found


def _no_gpu_warnings(cells: list[Entry]) -> list[str]:
    cpu_only: dict[str, list[str]] = {}
    for e in cells:
        smoke = e.record.smoke or {}
        if smoke.get("cuda_build") and not smoke.get("gpu_used"):
            cpu_only.setdefault(e.machine, []).append(f"`{e.record.key}`")
    return [
        f"{NO_GPU} on {machine}: CUDA images ran on CPU ({', '.join(keys)}); "
        "their latency is CPU latency"
        for machine, keys in cpu_only.items()
    ]


def _steps_section(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    rows = [row for e in cells for row in _slowest_steps(runs, e)]
    headers = [*_machine(runs, "machine"), "cell", "step", "instruction", "time", "of build"]
    body = markdown_table(rows, headers) if rows else "No build steps recorded."
    return f"## Slowest build steps\n\nThe {SLOWEST_STEPS} slowest steps of each image.\n\n{body}"


def _slowest_steps(runs: Sequence[RunResults], entry: Entry) -> list[list[Any]]:
    r = entry.record
    timed = [(summarize(s.seconds)["median"] or 0.0, s) for s in r.steps]
    timed.sort(key=lambda pair: pair[0], reverse=True)
    total = build_median(r)
    return [
        [
            *_machine(runs, entry.machine),
            r.key,
            step.index,
            f"`{fmt.one_line(step.instruction, STEP_TEXT_WIDTH)}`",
            fmt.seconds(seconds),
            "-" if not total else f"{seconds / total:.0%}",
        ]
        for seconds, step in timed[:SLOWEST_STEPS]
    ]


ENVIRONMENT: list[tuple[str, Callable[[RunInfo], str]]] = [
    ("run id", lambda i: i.run_id),
    ("started", lambda i: i.started_at),
    ("finished", lambda i: i.finished_at or f"not finished ({i.exit_reason or 'interrupted'})"),
    ("host", lambda i: i.host),
    ("CPU", lambda i: f"{i.cpu} ({i.cpu_count} cores)"),
    ("memory", lambda i: fmt.size(i.memory_bytes)),
    ("engine", lambda i: f"Docker {i.engine_version} (API {i.engine_api_version}, {i.engine_os})"),
    ("storage driver", lambda i: i.storage_driver),
    ("builder", lambda i: i.builder),
    ("base image", lambda i: f"{i.base_image} ({(i.base_image_id or '-')[:19]})"),
    ("buildbench", lambda i: i.buildbench_version),
    ("commit", lambda i: (i.git_commit or "-")[:12]),
    ("samples per cell", lambda i: str(i.options.get("repeat", "-"))),
]


def _environment_section(runs: Sequence[RunResults]) -> str:
    rows = [[name, *(value(run.info) for run in runs)] for name, value in ENVIRONMENT]
    pythons = [_python_versions(run) for run in runs]
    rows.append(["python (images)", *pythons])
    headers = ["", *(machine for machine, _ in labelled(runs))]
    return "## Environment\n\n" + markdown_table(rows, headers)


def _python_versions(run: RunResults) -> str:
    found = dict.fromkeys(r.python_version for r in run.records if r.python_version)
    return ", ".join(found) or "-"


# ---------------------------------------------------------------------------------------------
# CSV and JSON views


def cells_frame(runs: Sequence[RunResults]) -> pd.DataFrame:
    """One row per cell of every run: the results CSV's columns plus the smoke figures."""
    frames = [_run_frame(run) for run in runs if run.records]
    if not frames:
        return pd.DataFrame()
    # Nullable dtypes: byte counts stay integers where a failed cell has none.
    return pd.concat(frames, ignore_index=True).convert_dtypes()


def _run_frame(run: RunResults) -> pd.DataFrame:
    smoke = pd.DataFrame([_smoke_columns(r) for r in run.records])
    return pd.concat([table(run.info, run.records), smoke], axis=1)


def _smoke_columns(r: CellRecord) -> dict[str, Any]:
    found = parity(r) or {}
    return {
        "parity_ok": found.get("ok"),
        "parity_max_abs_diff": found.get("max_abs_diff"),
        "p50_b1_seconds": latency(r, "p50"),
        "p95_b1_seconds": latency(r, "p95"),
        "cold_start_seconds": cold_start(r),
        "peak_memory_bytes": (r.smoke or {}).get("peak_memory_bytes"),
    }


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


# ---------------------------------------------------------------------------------------------
# Writing


def draw_charts(runs: Sequence[RunResults], report: Path) -> list[tuple[str, str]] | str:
    """PNGs next to the report, named after it; a note instead when matplotlib is missing."""
    cells = _by_image(entries(runs))  # a failed cell shows as its status on the axis
    merged = len(runs) > 1
    spread = any(len(e.record.build_seconds) > 1 for e in cells)
    try:
        drawn = [
            charts.grouped_bars(
                report.with_name(f"{report.stem}-build-time.png"),
                [_bar(e, merged, *_time(e.record)) for e in cells],
                title="Build time per cell" + (" (median; whiskers: min-max)" if spread else ""),
                ylabel="seconds",
            ),
            charts.grouped_bars(
                report.with_name(f"{report.stem}-image-size.png"),
                [_bar(e, merged, *_size_gb(e.record)) for e in cells],
                title="Image size per cell",
                ylabel="GB",
            ),
        ]
    except charts.ChartsUnavailable:
        return CHARTS_MISSING
    return [("Build time per cell", drawn[0].name), ("Image size per cell", drawn[1].name)]


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
    if entry.record.status != status.OK:
        text = f"{text}\n{entry.record.status}".strip()
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
    samples = record.build_seconds
    if not samples:
        return 0.0, None, ""
    median = build_median(record) or 0.0
    return median, (min(samples), max(samples)) if len(samples) > 1 else None, fmt.seconds(median)


def _size_gb(record: CellRecord) -> tuple[float, None, str]:
    size = record.image_size_bytes
    return (size or 0) / 1e9, None, "" if size is None else fmt.size(size)


def write_report(
    path: Path,
    runs: Sequence[RunResults],
    format_: str = "markdown",
    draw: bool = True,
) -> Path:
    """Write the report (and, for Markdown, its charts next to it); returns its path."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        drawn = draw_charts(runs, path) if draw and format_ == "markdown" else "not drawn"
        path.write_text(render(runs, format_, drawn))
    except OSError as exc:
        raise UsageError(
            f"cannot write the report to {path}: {exc.strerror}", tip="pick a writable -o FILE"
        ) from None
    return path


def write_run_report(run_dir: Path, run: RunInfo, records: list[CellRecord]) -> Path:
    """The report `buildbench run` leaves next to its results."""
    return write_report(run_dir / REPORT_MD, [RunResults(run, records)])
