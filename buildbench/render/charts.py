"""Bar, line and scatter charts for the report, drawn with matplotlib's Agg canvas into PNG files.

matplotlib is the `report` extra: it is imported only when a chart is drawn, and its absence
is a `ChartsUnavailable` the report turns into a note.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# One colour per image, in order: colour-blind safe (Okabe-Ito); one hatch per machine.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
HATCHES = ("", "//", "..", "xx", "\\\\", "++")
MARKERS = ("o", "^", "s", "D", "v", "P")  # one per variant, in order
GROUP_WIDTH = 0.8  # of the space between two groups
# What the first chart imports, in order, about two tenths of a second each: for a caller with
# time to spare (a run's preflight and quiet windows), before `preload`. Without matplotlib,
# the report says so when it is written.
MODULES = ("matplotlib", "matplotlib.backends.backend_agg", "matplotlib.figure")


class ChartsUnavailable(Exception):
    """matplotlib is not installed."""


@dataclass(frozen=True)
class Bar:
    group: str  # the x-axis group (a variant)
    series: str  # the legend entry (an image's name, with its machine if merged)
    value: float
    spread: tuple[float, float] | None = None  # (min, max): an error bar, when n > 1
    text: str = ""  # written above the bar
    colour: str = ""  # bars with the same key share a colour (an image)
    hatch: str = ""  # bars with the same key share a hatch (a machine)


@dataclass(frozen=True)
class Stack:
    """One stacked bar: its label and its (segment, value) parts, bottom first."""

    label: str
    segments: list[tuple[str, float]]


@dataclass(frozen=True)
class Line:
    """One series of a trend chart: a value per run, and the runs where a shift starts."""

    label: str
    values: list[float]
    marks: list[int]


@dataclass(frozen=True)
class Curve:
    """One HTTP service's figures per concurrency level (None where a level has none)."""

    label: str
    concurrency: list[int]
    throughput: list[float | None]  # good answers per second
    p95_ms: list[float | None]


@dataclass(frozen=True)
class RateCurve:
    """One HTTP service's open-loop sweep: p95 (from scheduled times) per arrival rate."""

    label: str
    rates: list[float]  # requests per second, ascending
    p95_ms: list[float | None]


@dataclass(frozen=True)
class Point:
    """One labelled point of a scatter chart."""

    label: str
    x: float
    y: float
    marker: str = ""  # points with the same key share a marker (a variant), named in the legend
    colour: str = ""  # points with the same key share a colour (an image)


def _figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ChartsUnavailable(str(exc)) from None
    return Figure(figsize=(7, 4), dpi=100, layout="constrained")


def preload() -> None:
    """matplotlib imported, and its font loaded by a first tiny drawing: what the first chart
    pays (about half a second), for a caller with time to spare before it."""
    figure = _figure()
    figure.subplots().set_title("0")
    figure.savefig(io.BytesIO(), format="png")


def grouped_bars(path: Path, bars: list[Bar], *, title: str, ylabel: str) -> Path:
    """One bar per series within each group, labelled with its text, with min-max error bars."""
    figure = _figure()
    axes = figure.subplots()
    groups = _keys(bar.group for bar in bars)
    series = _keys(bar.series for bar in bars)
    colours, hatches = _keys(bar.colour for bar in bars), _keys(bar.hatch for bar in bars)
    width = GROUP_WIDTH / max(len(series), 2)  # one series: half-width bars, not a wall
    for index, name in enumerate(series):
        mine = [bar for bar in bars if bar.series == name]
        offset = (index - (len(series) - 1) / 2) * width
        xs = [groups.index(bar.group) + offset for bar in mine]
        axes.bar(
            xs,
            [bar.value for bar in mine],
            width,
            label=name,
            color=COLOURS[colours.index(mine[0].colour) % len(COLOURS)],
            hatch=HATCHES[hatches.index(mine[0].hatch) % len(HATCHES)],
            edgecolor="white",
        )
        _error_bars(axes, xs, mine)
        _labels(axes, xs, mine)
    axes.set_xticks(range(len(groups)), groups)
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.margins(y=0.15)
    axes.spines[["top", "right"]].set_visible(False)
    if series:
        axes.legend(frameon=False)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def stacked_bars(path: Path, stacks: list[Stack], *, title: str, ylabel: str) -> Path:
    """One horizontal stacked bar per label; each segment name keeps one colour throughout."""
    figure = _figure()
    axes = figure.subplots()
    names = _keys(name for stack in stacks for name, _ in stack.segments)
    ys = list(range(len(stacks)))
    left = [0.0] * len(stacks)
    for index, name in enumerate(names):
        widths = [dict(stack.segments).get(name, 0.0) for stack in stacks]
        axes.barh(
            ys, widths, left=left, label=name, color=COLOURS[index % len(COLOURS)], height=0.6
        )
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for y, total in zip(ys, left, strict=True):
        axes.annotate(
            f"{total:.2f} s", (total, y), xytext=(3, 0), textcoords="offset points", va="center"
        )
    axes.set_yticks(ys, [stack.label for stack in stacks])
    axes.invert_yaxis()
    axes.set_title(title)
    axes.set_xlabel(ylabel)
    axes.margins(x=0.15)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, fontsize=8)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def trend(path: Path, lines: list[Line], *, title: str, ylabel: str) -> Path:
    """A line per series over the runs (oldest left); a ring where a shift starts."""
    figure = _figure()
    axes = figure.subplots()
    for index, line in enumerate(lines):
        colour = COLOURS[index % len(COLOURS)]
        runs = list(range(1, len(line.values) + 1))
        axes.plot(runs, line.values, marker=".", color=colour, label=line.label)
        marked = [(runs[i], line.values[i]) for i in line.marks if i < len(line.values)]
        if marked:
            axes.scatter(
                [x for x, _ in marked],
                [y for _, y in marked],
                s=120,
                facecolors="none",
                edgecolors=colour,
                linewidths=1.5,
            )
    axes.set_title(title)
    axes.set_xlabel("run (oldest first)")
    axes.set_ylabel(ylabel)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, fontsize=8)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def served_curves(path: Path, curves: list[Curve]) -> Path:
    """Two panels over concurrency (log 2 axis): throughput, and p95 latency; a line per cell."""
    figure = _figure()
    rate, latency = figure.subplots(1, 2)
    for index, curve in enumerate(curves):
        colour = COLOURS[index % len(COLOURS)]
        for axes, values in ((rate, curve.throughput), (latency, curve.p95_ms)):
            points = [
                (c, v) for c, v in zip(curve.concurrency, values, strict=True) if v is not None
            ]
            axes.plot(
                [c for c, _ in points],
                [v for _, v in points],
                marker="o",
                color=colour,
                label=curve.label,
            )
    for axes, title, ylabel in (
        (rate, "Throughput", "good answers per second"),
        (latency, "p95 latency", "ms"),
    ):
        axes.set_xscale("log", base=2)
        ticks = sorted({c for curve in curves for c in curve.concurrency})
        axes.set_xticks(ticks, [str(c) for c in ticks])
        axes.set_xlabel("concurrency")
        axes.set_ylabel(ylabel)
        axes.set_title(title)
        axes.set_ylim(bottom=0)
        axes.spines[["top", "right"]].set_visible(False)
    rate.legend(frameon=False, fontsize=8)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def rate_curves(path: Path, curves: list[RateCurve], slo_ms: float | None) -> Path:
    """p95 latency against arrival rate, a line per cell, the SLO as a dashed line."""
    figure = _figure()
    axes = figure.subplots(1, 1)
    for index, curve in enumerate(curves):
        points = [(r, v) for r, v in zip(curve.rates, curve.p95_ms, strict=True) if v is not None]
        axes.plot(
            [r for r, _ in points],
            [v for _, v in points],
            marker="o",
            color=COLOURS[index % len(COLOURS)],
            label=curve.label,
        )
    if slo_ms is not None:
        axes.axhline(slo_ms, color="grey", linestyle="--", linewidth=1, label=f"SLO {slo_ms:g} ms")
    axes.set_xscale("log")
    axes.set_xlabel("arrival rate (requests per second)")
    axes.set_ylabel("p95 latency from scheduled time (ms)")
    axes.set_title("p95 against arrival rate (open loop)")
    axes.set_ylim(bottom=0)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, fontsize=8)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def scatter(
    path: Path, points: list[Point], *, title: str, xlabel: str, ylabel: str, note: str = ""
) -> Path:
    """A point per item, labelled beside it; a marker per marker key (the legend names them)
    and a colour per colour key; `note` under the axes (what is not shown, and why)."""
    figure = _figure()
    axes = figure.subplots()
    markers, colours = _keys(p.marker for p in points), _keys(p.colour for p in points)
    for index, marker in enumerate(markers):
        mine = [p for p in points if p.marker == marker]
        axes.scatter(
            [p.x for p in mine],
            [p.y for p in mine],
            s=60,
            marker=MARKERS[index % len(MARKERS)],
            c=[COLOURS[colours.index(p.colour) % len(COLOURS)] for p in mine],
            label=marker,
        )
    for p, below in zip(points, _crowded(points), strict=True):
        axes.annotate(
            p.label, (p.x, p.y), xytext=(5, 4 - 11 * below), textcoords="offset points", fontsize=8
        )
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.margins(x=0.25, y=0.15)  # room for the labels right of the points
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.spines[["top", "right"]].set_visible(False)
    if markers:
        legend = axes.legend(frameon=False, fontsize=8, loc="lower right")  # mostly empty
        for handle in legend.legend_handles:  # the marker, not the first point's colour
            handle.set_color("0.4")
    if note:
        figure.text(0.01, 0.01, note, fontsize=7, ha="left", va="bottom")
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def _crowded(points: list[Point]) -> list[int]:
    """Per point, how many earlier points lie close to it (within 8% of each axis's span): its
    label goes that many lines lower, so that labels of near points do not overlap."""
    span_x = max((p.x for p in points), default=0) or 1.0
    span_y = max((p.y for p in points), default=0) or 1.0
    return [
        sum(
            abs(p.x - q.x) < 0.08 * span_x and abs(p.y - q.y) < 0.08 * span_y
            for q in points[:index]
        )
        for index, p in enumerate(points)
    ]


def _keys(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _labels(axes: Any, xs: list[float], bars: list[Bar]) -> None:
    """Each bar's text above it, and above its error bar."""
    for x, bar in zip(xs, bars, strict=True):
        top = max(bar.value, bar.spread[1]) if bar.spread else bar.value
        axes.annotate(
            bar.text,
            (x, top),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )


def _error_bars(axes: Any, xs: list[float], bars: list[Bar]) -> None:
    spread = [(x, bar.value, bar.spread) for x, bar in zip(xs, bars, strict=True) if bar.spread]
    if not spread:
        return
    axes.errorbar(
        [x for x, _, _ in spread],
        [value for _, value, _ in spread],
        yerr=[
            [value - lo for _, value, (lo, _) in spread],
            [hi - value for _, value, (_, hi) in spread],
        ],
        fmt="none",
        ecolor="black",
        capsize=4,
        linewidth=1,
    )
