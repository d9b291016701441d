"""The figures derived from a run's raw samples, and the results document that carries them.

A record keeps what was measured (every sample); the statistics are computed here, for
buildbench's own readers and, written beside the samples, for anyone reading results.json
(`build.stats`, `smoke.latency.<batch>.quantiles`, `smoke.parity_summary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from buildbench.analyze.served import served_json
from buildbench.analyze.stats import latency_quantiles, summarize
from buildbench.record import (
    SCHEMA_VERSION,
    CellRecord,
    Latency,
    Parity,
    Quantiles,
    RunInfo,
    SmokeResult,
    Summary,
    to_json,
)


def build_summary(record: CellRecord) -> Summary:
    return summarize(record.build.seconds)


def cold_start_summary(smoke: SmokeResult) -> Summary:
    return summarize(smoke.cold_start_seconds)


def quantiles(latency: Latency) -> Quantiles:
    return latency_quantiles(latency.samples)


def worst_parity(smoke: SmokeResult) -> Parity | None:
    """The worst parity over the batch sizes."""
    return _worst(list(smoke.parity.values()))


def cell_parity(smoke: SmokeResult) -> Parity | None:
    """The worst parity of every model a cell ran (a cell's one figure: the CSV's)."""
    return _worst([p for one in (smoke, *smoke.more_models) for p in one.parity.values()])


def _worst(found: list[Parity]) -> Parity | None:
    if not found:
        return None
    return Parity(
        max(p.max_abs_diff for p in found),
        max(p.max_rel_diff for p in found),
        all(p.ok for p in found),
    )


def ran_on_cpu(smoke: SmokeResult) -> bool:
    """A CUDA build that ran its inference on the CPU (no GPU on the engine, or none asked)."""
    return bool(smoke.cuda_build) and not smoke.gpu_used


def cell_json(record: CellRecord) -> dict[str, Any]:
    """A cell as results.json holds it: its record, and the statistics of its samples."""
    data: dict[str, Any] = to_json(record)
    data["build"]["stats"] = to_json(build_summary(record))
    if record.smoke is not None:
        data["smoke"] = smoke_json(record.smoke)
    if record.slim is not None and record.slim.smoke is not None:  # the candidate's own test
        data["slim"]["smoke"] = smoke_json(record.slim.smoke)
    return data


def smoke_json(result: SmokeResult) -> dict[str, Any]:
    """A smoke result with the statistics of its samples."""
    smoke: dict[str, Any] = to_json(result)
    for batch, latency in result.latency.items():
        smoke["latency"][batch]["quantiles"] = to_json(quantiles(latency))
    smoke["parity_summary"] = to_json(worst_parity(result))
    if result.served is not None:
        smoke["served"] = served_json(result.served)
    # Each further model's result has its own statistics, as the first one's.
    smoke["more_models"] = [smoke_json(more) for more in result.more_models]
    return smoke


def results_document(run: RunInfo, records: Sequence[CellRecord]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "run": to_json(run),
        "results": [cell_json(r) for r in records],
    }
