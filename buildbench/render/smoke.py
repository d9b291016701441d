"""The report's "Smoke tests" section: one row per cell (and per further model), what every
kind reports (its verdict, cold start, peak memory) beside the model kind's parity, latency
per batch size and real variant."""

from __future__ import annotations

from collections.abc import Sequence

from buildbench.analyze.course import Entry
from buildbench.analyze.derived import cold_start_summary, quantiles, worst_parity
from buildbench.record import SmokeResult, model_of
from buildbench.render import fmt
from buildbench.render.mdparts import machine_column, markdown_table, summary_interval
from buildbench.results import RunResults


def batch_sizes(cells: Sequence[Entry]) -> list[str]:
    """Every batch size any model of these cells was timed at (a fixed batch is its own)."""
    smokes = [s for e in cells if e.record.smoke for s in _models(e.record.smoke)]
    return sorted({b for s in smokes for b in model_of(s).latency}, key=int)


def _models(smoke: SmokeResult) -> list[SmokeResult]:
    """The result of each model a smoke test ran: itself, then each further model's."""
    return [smoke, *model_of(smoke).more_models]


def parity_text(smoke: SmokeResult) -> str:
    summary = worst_parity(model_of(smoke))
    if summary is None:
        return "-"
    return f"{'ok' if summary.ok else 'FAIL'}, max abs diff {summary.max_abs_diff:.1e}"


def latency_text(smoke: SmokeResult, batch: str) -> str:
    found = model_of(smoke).latency.get(batch)
    if found is None:
        return "-"
    q = quantiles(found)
    return f"{fmt.ms(q.p50)} / {fmt.ms(q.p95)} (n={q.n})"


def smoke_section(runs: Sequence[RunResults], cells: list[Entry]) -> str:
    tested = [e for e in cells if e.record.smoke is not None]
    if not tested:
        return ""
    batches = batch_sizes(tested)
    several = any(model_of(e.record.smoke).more_models for e in tested)
    rows = []
    for e in tested:
        assert e.record.smoke is not None
        for smoke in _models(e.record.smoke):
            detail = model_of(smoke)
            model = detail.model.source if detail.model else "-"
            rows.append(
                [
                    *machine_column(runs, e.machine),
                    e.record.key,
                    *([f"`{model}`"] if several else []),
                    smoke.status.value,
                    parity_text(smoke)
                    if smoke.kind == "model" and not detail.not_applicable
                    else smoke.message,
                    *(latency_text(smoke, b) for b in batches),
                    summary_interval(cold_start_summary(smoke)),
                    fmt.size(smoke.peak_memory_bytes),
                    fmt.flag(detail.cuda_build),
                    fmt.flag(detail.gpu_used),
                ]
            )
    headers = [*machine_column(runs, "machine"), "cell", *(["model"] if several else [])]
    headers += ["smoke", "parity"]
    headers += [f"b={b} p50 / p95" for b in batches]
    headers += ["cold start", "peak memory", "cuda build", "gpu used"]
    note = (
        "Parity: the worst over the batch sizes of the largest absolute difference from the "
        "host's reference outputs (fp32, rtol 1e-3, atol 1e-4). Latency per batch size: p50 / "
        "p95 of n timed runs. Cold start: median [range] of fresh containers, start request to "
        "first model output."
    )
    if several:
        note += (
            " Several models: a row each, in the order given; the first row's verdict is the "
            "cell's (a further model that fails fails the cell)."
        )
    return "## Smoke tests\n\n" + markdown_table(rows, headers) + "\n\n" + note
