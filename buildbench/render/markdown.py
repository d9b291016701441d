"""The report people read: Markdown tables of one or more runs, in the order a reader asks.

Every runtime against PyTorch (what the course said beside ONNX Runtime) with its chart, the
cells, their smoke tests, the time from registry to first inference, what is in each image and
what could go, then warnings, the slowest build steps, the environment and how everything was
measured.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from buildbench.analyze.course import (
    Entry,
    build_median,
    builder_comparison,
    entries,
    labelled,
)
from buildbench.analyze.derived import (
    build_summary,
    ran_on_cpu,
)
from buildbench.analyze.metrics import image_label
from buildbench.analyze.shards import missing_cells
from buildbench.analyze.stats import summarize
from buildbench.record import CellRecord, RunInfo
from buildbench.render import fmt
from buildbench.render.kinds import kind_reports
from buildbench.render.mdparts import machine_column, markdown_table, summary_interval
from buildbench.render.runtimes import CHART_TITLE, runtimes_section
from buildbench.render.slim import slim_section
from buildbench.render.smoke import smoke_section
from buildbench.render.timeline import timeline_section
from buildbench.results import RunResults
from buildbench.status import Status

STEP_TEXT_WIDTH = 60
SLOWEST_STEPS = 3
TOP_ITEMS = 5


def render_markdown(runs: Sequence[RunResults], chart_links: list[tuple[str, str]] | str) -> str:
    """The whole report; `chart_links`: (title, relative path) per chart, or why there are none."""
    cells = entries(runs)
    sections = [
        _title(runs, cells),
        runtimes_section(runs, _chart(chart_links, CHART_TITLE)),
        _builders_section(runs),
        _cells_section(runs, cells),
        smoke_section(runs, cells),
        *(report.results(runs, cells) for report in kind_reports()),
        *(report.details(runs, cells) for report in kind_reports()),
        _contents_section(runs, cells),
        _waste_section(runs, cells),
        slim_section(runs),
        _shipping_section(runs, cells),
        timeline_section(runs),
        _charts_section(chart_links, shown=CHART_TITLE),
        _warnings_section(cells),
        _steps_section(runs, cells),
        _environment_section(runs),
        _method_section(runs),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _title(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    failed = sum(e.record.status != Status.OK for e in cells)
    counts = f"{len(cells)} cells, {len(cells) - failed} ok, {failed} failed"
    if len(runs) == 1:
        info = runs[0].info
        what = f"Run `{info.run_id}` on {info.machine}, started {info.started_at}"
    else:
        names = ", ".join(f"{m} (`{r.info.run_id}`)" for m, r in labelled(runs))
        what = f"{len(runs)} runs merged: {names}"
    return f"# buildbench report\n\n{what}: {counts}." + "".join(map(_slices, runs))


def _slices(run: RunResults) -> str:
    """A sharded run's slices, merged: which, and the cells of any slice not given."""
    shard = run.info.shard
    if shard is None:
        return ""
    held = ", ".join(str(index) for index in shard.merged or (shard.index,))
    text = f"\n\n{run.info.machine}: slices {held} of {shard.count} of sharded run `{shard.run}`"
    missing = missing_cells(replace(shard, merged=shard.merged or (shard.index,)))
    gaps = [f"slice {k}/{shard.count} ({', '.join(keys)})" for k, keys in missing.items()]
    return text + (f"; **missing: {'; '.join(gaps)}**." if gaps else ", every cell present.")


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


# ---------------------------------------------------------------------------------------------
# Cells and their smoke tests


CELL_HEADERS = ["image", "variant", "status", "build", "size", "over base", "compressed"]
CELL_HEADERS += ["layers", "version"]


def cell_columns(r: CellRecord) -> list[Any]:
    """One cell's row under CELL_HEADERS: the report's and the terminal's."""
    image = r.image
    compressed = fmt.size(image.compressed_size_bytes if image else None)
    if image and image.compressed_size_source == "registry":
        compressed += " (registry)"
    return [
        image_label(r),
        r.variant,
        r.status.value,
        summary_interval(build_summary(r)) + (" (prefetch)" if r.build.mode == "prefetch" else ""),
        fmt.size(image.size_bytes if image else None),
        fmt.size(image.bytes_over_base if image else None),
        compressed,
        "-" if image is None else image.layers,
        (image.framework_version if image else None) or "-",
    ]


def _cells_section(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    rows = [[*machine_column(runs, e.machine), *cell_columns(e.record)] for e in cells]
    headers = [*machine_column(runs, "machine"), *CELL_HEADERS]
    intervals = (
        "Build: median of the no-cache builds, with its 95% interval where there are enough "
        "samples (order statistics), else [min-max] of two or more; see Method."
    )
    skipped = "".join(f"\n\nNot built: {line}." for line in _not_built(runs))
    return "## Cells\n\n" + markdown_table(rows, headers) + "\n\n" + intervals + skipped


def _not_built(runs: Sequence[RunResults]) -> list[str]:
    """The cells a run left out before building (no model of the run runs on them), with why."""
    return [
        f"{machine}: {line}" if len(runs) > 1 else line
        for machine, run in labelled(runs)
        for line in fmt.grouped(run.info.options.get("not_built") or {})
    ]


# ---------------------------------------------------------------------------------------------
# What is in the images, and shipping them


def _contents_section(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    rows = []
    for e in cells:
        contents = e.record.contents
        if contents is None:
            continue
        top = ", ".join(f"{d.name} {fmt.size(d.bytes)}" for d in contents.top_distributions(3))
        packages = ", ".join(f"{p.name} {fmt.size(p.bytes)}" for p in contents.top_packages(3))
        layers = ", ".join(
            f"`{fmt.one_line(layer.instruction or '-', 40)}` {fmt.size(layer.size_bytes)}"
            for layer in contents.biggest_layers(2)
        )
        rows.append(
            [
                *machine_column(runs, e.machine),
                e.record.key,
                fmt.size(contents.attribution.bytes_over_base),
                top or "-",
                fmt.size(contents.cuda_libraries_bytes) if contents.cuda_libraries_bytes else "-",
                packages or "-",
                fmt.size(contents.attribution.other_bytes),
                layers or "-",
            ]
        )
    if not rows:
        return ""
    headers = [*machine_column(runs, "machine"), "cell", "over base", "top Python distributions"]
    headers += ["CUDA libraries", "top Debian packages", "other", "biggest layers"]
    note = (
        "Bytes over the base image, split by the Python distribution (its RECORD) and the "
        "Debian package (dpkg's file lists) that owns each file of the final filesystem; "
        "other: files nothing owns, and bytes later layers delete or overwrite. CUDA "
        "libraries: the nvidia-* distributions."
    )
    return "## What is in each image\n\n" + markdown_table(rows, headers) + "\n\n" + note


def _waste_section(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    rows = []
    for e in cells:
        contents = e.record.contents
        if contents is None:
            continue
        for finding in contents.findings:
            rows.append(
                [
                    *machine_column(runs, e.machine),
                    e.record.key,
                    finding.kind,
                    fmt.size(finding.bytes),
                    ", ".join(f"`{p}`" for p in finding.paths[:2]),
                    f"`{fmt.one_line(finding.instruction or '-', 40)}`",
                    finding.fix,
                ]
            )
    if not rows:
        return ""
    rows.sort(key=lambda row: -_bytes_of(row[-4]))
    headers = [*machine_column(runs, "machine"), "cell", "finding", "could save", "e.g."]
    headers += ["made by", "fix"]
    scores = ", ".join(
        f"{e.record.key} {fmt.percent(e.record.contents.efficiency)}"
        for e in cells
        if e.record.contents is not None
    )
    return (
        "## What could go\n\n"
        + markdown_table(rows, headers)
        + f"\n\nEfficiency (dive's score: bytes kept / bytes written by the layers): {scores}."
    )


def _bytes_of(shown: str) -> float:
    number, _, unit = shown.partition(" ")
    scale = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}.get(unit, 0)
    try:
        return float(number) * scale
    except ValueError:
        return 0.0


def _shipping_section(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    rows = []
    for e in cells:
        shipping = e.record.registry
        if shipping is None:
            continue
        rows.append(
            [
                *machine_column(runs, e.machine),
                e.record.key,
                shipping.registry,
                fmt.size(shipping.stored_bytes),
                fmt.seconds(shipping.push_seconds),
                fmt.seconds(shipping.pull_seconds),
                fmt.seconds(shipping.cold_pull_seconds),
                shipping.note or "",
            ]
        )
    if not rows:
        return ""
    headers = [*machine_column(runs, "machine"), "cell", "registry", "stored", "push", "pull"]
    headers += ["cold pull", "note"]
    note = (
        "Stored: the manifest's layer sizes, what the registry holds. Pull: onto the engine "
        "after removing the image, the base image's layers kept; cold pull: base included."
    )
    return "## Shipping through a registry\n\n" + markdown_table(rows, headers) + "\n\n" + note


# ---------------------------------------------------------------------------------------------
# Charts, warnings, steps, environment, method


def _chart(chart_links: list[tuple[str, str]] | str, title: str) -> str | None:
    """The path of the chart of that title, where it was drawn."""
    return None if isinstance(chart_links, str) else dict(chart_links).get(title)


def _charts_section(chart_links: list[tuple[str, str]] | str, shown: str) -> str:
    """Every chart but the one already `shown` under its table."""
    if isinstance(chart_links, str):
        return f"## Charts\n\nCharts {chart_links}."
    links = [f"![{title}]({path})" for title, path in chart_links if title != shown]
    return "## Charts\n\n" + "\n".join(links)


def _warnings_section(cells: list[Entry]) -> str:
    lines = [line for e in cells for line in _cell_warnings(e)] + _no_gpu_warnings(cells)
    return "## Warnings\n\n" + ("\n".join(f"- {line}" for line in lines) or "None.")


def _cell_warnings(entry: Entry) -> list[str]:
    r = entry.record
    where = f"`{r.key}` on {entry.machine}"
    found = [f"{where}: {w}" for w in r.warnings]
    if r.status != Status.OK:
        error = fmt.one_line(r.error or "no error text", 300)
        found.insert(0, f"{where}: **{r.status.value}**: {error}")
    return found


def _no_gpu_warnings(cells: list[Entry]) -> list[str]:
    cpu_only: dict[str, list[str]] = {}
    for e in cells:
        if e.record.smoke is not None and ran_on_cpu(e.record.smoke):
            cpu_only.setdefault(e.machine, []).append(f"`{e.record.key}`")
    return [
        f"no GPU on {machine}: CUDA images ran on CPU ({', '.join(keys)}); "
        "their latency is CPU latency"
        for machine, keys in cpu_only.items()
    ]


def _steps_section(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    rows = [row for e in cells for row in _slowest_steps(runs, e)]
    headers = [*machine_column(runs, "machine"), "cell", "step", "instruction", "time", "of build"]
    body = markdown_table(rows, headers) if rows else "No build steps recorded."
    return f"## Slowest build steps\n\nThe {SLOWEST_STEPS} slowest steps of each image.\n\n{body}"


def _slowest_steps(runs: Sequence[RunResults], entry: Entry) -> list[list[Any]]:
    r = entry.record
    timed = [(summarize(s.seconds).median or 0.0, s) for s in r.build.steps]
    timed.sort(key=lambda pair: pair[0], reverse=True)
    total = build_median(r)
    return [
        [
            *machine_column(runs, entry.machine),
            r.key,
            step.index,
            f"`{fmt.one_line(step.instruction, STEP_TEXT_WIDTH)}`",
            fmt.seconds(seconds),
            "-" if not total else f"{seconds / total:.0%}",
        ]
        for seconds, step in timed[:SLOWEST_STEPS]
    ]


def _engine(info: RunInfo) -> str:
    engine = info.engine
    where = "local" if engine.local else "remote"
    platform = f"{engine.os}/{engine.arch}"
    return f"Docker {engine.server_version} (API {engine.api_version}, {platform}, {where})"


ENVIRONMENT: list[tuple[str, Callable[[RunInfo], str]]] = [
    ("run id", lambda i: i.run_id),
    ("started", lambda i: i.started_at),
    ("finished", lambda i: i.finished_at or f"not finished ({i.exit_reason or 'interrupted'})"),
    ("engine", _engine),
    ("engine endpoint", lambda i: i.engine.endpoint),
    ("engine host", lambda i: i.engine.name or "-"),
    ("engine CPU", lambda i: f"{i.engine.cpu_model or '-'} ({i.engine.cpus or '-'} cores)"),
    ("engine memory", lambda i: fmt.size(i.engine.memory_bytes)),
    ("storage driver", lambda i: i.engine.storage_driver),
    ("NVIDIA runtime", lambda i: fmt.flag(i.engine.nvidia_runtime)),  # "-": not recorded
    ("client", lambda i: f"{i.host}, {i.cpu} ({i.cpu_count} cores)"),
    ("builder", lambda i: i.builder),
    ("base image", lambda i: f"{i.base_image} ({(i.base_image_id or '-')[:19]})"),
    ("buildbench", lambda i: i.buildbench_version),
    ("commit", lambda i: (i.git_commit or "-")[:12]),
    ("samples per cell", lambda i: str(i.options.get("repeat", "-"))),
    ("wheels", lambda i: "prefetched" if i.options.get("prefetch") else "downloaded in the build"),
]


def _environment_section(runs: Sequence[RunResults]) -> str:
    rows = [[name, *(value(run.info) for run in runs)] for name, value in ENVIRONMENT]
    rows.append(["python (images)", *map(_python_versions, runs)])
    headers = ["", *(machine for machine, _ in labelled(runs))]
    return "## Environment\n\n" + markdown_table(rows, headers)


def _python_versions(run: RunResults) -> str:
    found = dict.fromkeys(r.image.python_version for r in run.records if r.image)
    return ", ".join(v for v in found if v) or "-"


def _method_section(runs: Sequence[RunResults]) -> str:
    timings = dict.fromkeys(run.info.timing for run in runs)
    latency = dict.fromkeys(run.info.latency_method for run in runs)
    lines = [f"- Build time: {t}." for t in timings]
    if context := _context_line(runs):
        lines.append(context)
    lines += [f"- Latency: {m}." for m in latency]
    return "## Method\n\n" + "\n".join(lines)


def _context_line(runs: Sequence[RunResults]) -> str | None:
    """How much of each build time packing and sending its context took (median of the
    samples), where recorded: schema 4 on, when it went inside the timed build."""
    named = labelled(runs)
    parts = [
        f"{f'{machine} ' if len(named) > 1 else ''}{r.key} "
        f"{fmt.seconds(statistics.median(r.build.context_seconds))} "
        f"({fmt.size(r.build.context_bytes)})"
        for machine, run in named
        for r in run.records
        if r.build.context_seconds
    ]
    if not parts:
        return None
    return "- Context packed and sent within the build time (median): " + ", ".join(parts) + "."
