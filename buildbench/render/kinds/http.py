"""The http kind's report: the "Served" section and charts, HTTP services measured under load,
one row per cell, then one per cell and concurrency level; with --slo-p95, one per cell and
arrival rate of the open-loop sweep; where cells ran a server's batching off and on, the two
side by side."""

from __future__ import annotations

from collections.abc import Sequence

from buildbench.analyze.course import Entry
from buildbench.analyze.derived import build_summary
from buildbench.analyze.served import (
    KNEE_FACTOR,
    knee,
    level_quantiles,
    rate_quantiles,
    rate_throughput,
    throughput,
)
from buildbench.record import LoadLevel, Quantiles, Served, ServedAnswers
from buildbench.render import charts, fmt
from buildbench.render.kinds.base import ChartSpec, KindReport
from buildbench.render.mdparts import markdown_table, summary_interval
from buildbench.results import RunResults


def _served(cells: Sequence[Entry]) -> list[tuple[Entry, Served]]:
    found = [(e, e.record.smoke.of(Served) if e.record.smoke else None) for e in cells]
    return [(e, served) for e, served in found if served is not None]


def _label(entry: Entry, merged: bool) -> str:
    return f"{entry.record.key} @ {entry.machine}" if merged else entry.record.key


def _quantile(q: Quantiles, name: str) -> str:
    value, ci = getattr(q, name), getattr(q, f"{name}_ci")
    return fmt.interval(value, ci.low if ci else None, ci.high if ci else None, "ms")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{fmt.number(value)}/s"


def served_section(cells: Sequence[Entry], merged: bool) -> str:
    """Ready time, resources and knee per service; latency and throughput per level."""
    found = _served(cells)
    if not found:
        return ""
    swept = any(served.slo_p95_seconds is not None for _, served in found)
    services = [
        [
            _label(e, merged),
            e.record.smoke.status.value if e.record.smoke else "-",
            served.request,
            fmt.seconds(served.ready_seconds),
            fmt.seconds(served.first_response_seconds),
            fmt.size(served.peak_memory_bytes),
            fmt.seconds(served.cpu_seconds),
            "-" if (k := knee(served)) is None else f"c={k}",
            *([_at_slo(served)] if swept else []),
        ]
        for e, served in found
    ]
    levels = []
    for e, served in found:
        for level in served.levels:
            q = level_quantiles(level)
            errors = ", ".join(f"{n} {kind}" for kind, n in level.errors.items() if n)
            levels.append(
                [
                    _label(e, merged),
                    level.concurrency,
                    _quantile(q, "p50"),
                    _quantile(q, "p95"),
                    _quantile(q, "p99"),
                    _rate(throughput(level)),
                    f"{q.n} / {level.requests}",
                    errors or "none",
                ]
            )
    note = (
        "Ready: from the service container's start request until its ready path answers a 2xx "
        "(or its port accepts); first answer: until the first good answer to the request (the "
        "service's cold start). Per concurrency level, after a warm-up: latency of every good "
        "answer, request sent to body read, p50 / p95 / p99 with 95% intervals; throughput: "
        "good answers per second; good / sent. Knee: the highest concurrency whose p95 stays "
        f"within {KNEE_FACTOR:g}x the p95 at the lowest concurrency. Peak memory and CPU: the "
        "service container's, from the engine's stats. The load generator shares the engine's "
        "CPUs with the service."
    )
    return (
        "## Served\n\n"
        + markdown_table(
            services,
            [
                "cell",
                "smoke",
                "request",
                "ready",
                "first answer",
                "peak memory",
                "CPU",
                "knee",
                *(["rate at SLO"] if swept else []),
            ],
        )
        + "\n\n"
        + markdown_table(
            levels,
            ["cell", "concurrency", "p50", "p95", "p99", "throughput", "good / sent", "errors"],
        )
        + "\n\n"
        + note
        + _rates_part(found, merged)
        + _batching_part(found, merged)
    )


def _at_slo(served: Served) -> str:
    """The highest arrival rate within the SLO, the SLO named; "-" without a sweep."""
    if served.slo_p95_seconds is None:
        return "-"
    slo = f"p95 <= {served.slo_p95_seconds * 1000:g} ms"
    rate = served.rate_at_slo()
    return (
        f"none of {len(served.rates)} rates ({slo})" if rate is None else f"{_rate(rate)} ({slo})"
    )


def _rates_part(found: list[tuple[Entry, Served]], merged: bool) -> str:
    """Each open-loop step: its latency from scheduled times, what it answered, the verdict."""
    rows = []
    for e, served in found:
        for step in sorted(served.rates, key=lambda step: step.rate):
            q = rate_quantiles(step)
            errors = ", ".join(f"{n} {kind}" for kind, n in step.errors.items() if n)
            rows.append(
                [
                    _label(e, merged),
                    _rate(step.rate),
                    _quantile(q, "p50"),
                    _quantile(q, "p95"),
                    _rate(rate_throughput(step)),
                    f"{q.n} / {step.scheduled}",
                    errors or "none",
                    fmt.ms(step.max_lag_seconds),
                    "yes" if step.within_slo else "no",
                ]
            )
    if not rows:
        return ""
    headers = ["cell", "arrival rate", "p50", "p95", "throughput", "good / scheduled"]
    headers += ["errors", "latest send", "within SLO"]
    note = (
        "Open loop (--slo-p95): requests sent at a fixed arrival rate, their times fixed in "
        "advance, each latency from its scheduled time, so the queue behind a stalled service "
        "counts (the coordinated-omission correction of wrk2). The rate is swept, doubling "
        "then bisecting, for the highest one whose p95 over every scheduled request (a failed "
        "or unsent one as infinitely slow) stays within the SLO. Latest send: the most a "
        "request left after its time; late: scheduled, never sent before the step's end."
    )
    return "\n\n" + markdown_table(rows, headers) + "\n\n" + note


def _pairs(found: list[tuple[Entry, Served]], merged: bool) -> list[tuple[str, Served, Served]]:
    """Each server measured with its batching off and on: a built-in server's cell holds both
    runs (the second in `batched`); a config's services pair two cells by `batching.pair`."""
    found_pairs = [
        (_label(e, merged), served, served.batched)
        for e, served in found
        if served.batched is not None
    ]
    sides: dict[str, dict[bool, tuple[Entry, Served]]] = {}
    for e, served in found:
        if served.batching is not None and served.batched is None:
            sides.setdefault(served.batching.pair, {})[served.batching.enabled] = (e, served)
    for pair, side in sides.items():
        if set(side) == {False, True}:
            (_, off), (e_on, on) = side[False], side[True]
            found_pairs.append((f"{pair} @ {e_on.machine}" if merged else pair, off, on))
    return found_pairs


def _setting(on: Served) -> str:
    batching = on.batching
    assert batching is not None
    return f"max {batching.max_batch or '-'}, {fmt.ms((batching.max_delay_ms or 0) / 1000)}"


def _batching_part(found: list[tuple[Entry, Served]], merged: bool) -> str:
    """Per server measured with its own batching off and on: throughput and p95 at each
    concurrency both measured, side by side, and batching's gain in throughput."""
    rows = []
    for label, off, on in _pairs(found, merged):
        for level in off.levels:
            other = on.level(level.concurrency)
            if other is None:
                continue
            rate_off, rate_on = throughput(level), throughput(other)
            gain = (
                f"{(rate_on / rate_off - 1) * 100:+.0f}%"
                if rate_off and rate_on is not None
                else "-"
            )
            rows.append(
                [
                    label,
                    _setting(on),
                    level.concurrency,
                    _rate(rate_off),
                    _rate(rate_on),
                    gain,
                    _quantile(level_quantiles(level), "p95"),
                    _quantile(level_quantiles(other), "p95"),
                ]
            )
    if not rows:
        return ""
    headers = ["server", "batching", "concurrency", "throughput off", "throughput on", "gain"]
    headers += ["p95 off", "p95 on"]
    return (
        "\n\n"
        + markdown_table(rows, headers)
        + "\n\nBatching: the same server measured with its own batching off and on (its "
        "largest batch and how long it waits to fill one; a built-in server: the same image in "
        "a second container); gain: throughput on against off."
    )


def _batching_gain(served: Served) -> str:
    """The serving table's word on batching: its gain (best throughput on against off, and
    p95 at the highest concurrency both ran), why it was not measured, or "-"."""
    batching, on = served.batching, served.batched
    if batching is not None and batching.unavailable:
        return f"not applicable: {batching.unavailable}"
    if on is None:
        return "-"
    best_off, best_on = _best_rate(served.levels), _best_rate(on.levels)
    if not best_off or best_on is None:
        return f"{_setting(on)}: no throughput with it on"
    text = f"{_setting(on)}: throughput x{best_on / best_off:.2f}"
    both = [lv.concurrency for lv in served.levels if on.level(lv.concurrency)]
    if both:
        top = max(both)
        off_p95 = level_quantiles(served.level(top)).p95  # type: ignore[arg-type]
        on_p95 = level_quantiles(on.level(top)).p95  # type: ignore[arg-type]
        text += f", p95 at c={top} {fmt.ms(off_p95)} -> {fmt.ms(on_p95)}"
    return text


def served_charts(cells: Sequence[Entry], merged: bool) -> list[ChartSpec]:
    """Throughput and p95 against concurrency, a line per cell; none without a service."""
    runs: list[tuple[str, Served]] = []
    for e, served in _served(cells):  # a built-in server's batching on: a line of its own
        runs.append((_label(e, merged), served))
        if served.batched is not None:
            runs.append((f"{_label(e, merged)} batching on", served.batched))
    curves = [
        charts.Curve(
            label,
            [lv.concurrency for lv in served.levels],
            [throughput(lv) for lv in served.levels],
            [_ms(level_quantiles(lv).p95) for lv in served.levels],
        )
        for label, served in runs
        if served.levels
    ]
    specs: list[ChartSpec] = []
    if curves:
        specs.append(
            (
                "Served: throughput and p95 against concurrency",
                "served",
                lambda path: charts.served_curves(path, curves),
            )
        )
    return specs + _rate_chart(cells, merged)


def _rate_chart(cells: Sequence[Entry], merged: bool) -> list[ChartSpec]:
    """p95 against arrival rate, a line per cell that ran the open-loop sweep."""
    swept = [(e, served) for e, served in _served(cells) if served.rates]
    if not swept:
        return []
    curves = []
    for e, served in swept:
        steps = sorted(served.rates, key=lambda step: step.rate)
        p95 = [_ms(rate_quantiles(step).p95) for step in steps]
        curves.append(charts.RateCurve(_label(e, merged), [s.rate for s in steps], p95))
    slos = {served.slo_p95_seconds for _, served in swept}
    slo = _ms(slos.pop()) if len(slos) == 1 else None
    return [
        (
            "Served: p95 against arrival rate (open loop)",
            "served-rates",
            lambda path: charts.rate_curves(path, curves, slo),
        )
    ]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _best_rate(levels: Sequence[LoadLevel]) -> float | None:
    return max((rate for lv in levels if (rate := throughput(lv)) is not None), default=None)


def _best(levels: Sequence[LoadLevel]) -> str:
    """The highest throughput and the concurrency it came at."""
    rated = [(rate, lv.concurrency) for lv in levels if (rate := throughput(lv)) is not None]
    if not rated:
        return "-"
    rate, at = max(rated)
    return f"{_rate(rate)} (c={at})"


def _parity(answers: ServedAnswers) -> str:
    if answers.note:
        return f"not proven: {answers.note}"
    if answers.ok:
        worst = max((p.max_abs_diff for p in answers.outputs.values()), default=0.0)
        return f"ok, {len(answers.outputs)} outputs, max abs diff {worst:.2g}"
    bad = [name for name, p in answers.outputs.items() if not p.ok]
    return f"fails: {', '.join(bad)}"


def serving_section(cells: Sequence[Entry], merged: bool) -> str:
    """The serving frameworks (--server) side by side: what each cost to build and ship, how
    soon it answered, how fast, and whether its answers were the model's."""
    rows = []
    for e, served in _served(cells):
        answers = served.answers
        if answers is None:
            continue
        first = served.level(1)
        q = level_quantiles(first) if first else None
        image = e.record.image
        rows.append(
            [
                _label(e, merged),
                e.record.smoke.status.value if e.record.smoke else "-",
                fmt.size(image.size_bytes if image else None),
                summary_interval(build_summary(e.record)),
                fmt.seconds(served.ready_seconds),
                fmt.seconds(served.first_response_seconds),
                _quantile(q, "p50") if q else "-",
                _quantile(q, "p95") if q else "-",
                _best(served.levels),
                _at_slo(served),
                _batching_gain(served),
                fmt.size(served.peak_memory_bytes),
                f"{answers.encoding}, {fmt.size(answers.request_bytes)}",
                _parity(answers),
            ]
        )
    if not rows:
        return ""
    headers = ["server", "smoke", "image", "build", "ready", "first answer", "p50 c=1"]
    headers += ["p95 c=1", "best throughput", "rate at SLO", "batching", "peak memory"]
    headers += ["request", "answers"]
    note = (
        "Each server serves the run's model in its own image, locked down, on the http kind "
        "(the Served section below has every level; rate at SLO: with --slo-p95). Batching: a "
        "server that batches on its own runs again with it on (the largest batch, the longest "
        "wait): its best throughput against the run with it off, and p95 at the highest "
        "concurrency, off -> on; not applicable says why. Answers: "
        "the first answer's outputs against the host's reference outputs, with the model smoke "
        "test's tolerances; a server that answers with other values fails its cell. Request: "
        "how the model's inputs were encoded, and the bytes of each request."
    )
    return "## Serving frameworks\n\n" + markdown_table(rows, headers) + "\n\n" + note


def _section(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    merged = len(runs) > 1
    return "\n\n".join(
        p for p in (serving_section(cells, merged), served_section(cells, merged)) if p
    )


REPORT = KindReport(results=_section, later_charts=served_charts)
