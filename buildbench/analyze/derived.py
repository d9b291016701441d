"""The figures derived from a run's raw samples: for buildbench's own readers and, written
beside the samples, for anyone reading results.json (`FIGURES`: `build.stats`,
`smoke.detail.latency.<batch>.quantiles`, `smoke.detail.parity_summary`, each HTTP level's
and arrival rate's quantiles and throughput, the service's knee and rate at the SLO;
results.py writes them)."""

from __future__ import annotations

from buildbench.analyze.served import (
    knee,
    level_quantiles,
    rate_quantiles,
    rate_throughput,
    throughput,
)
from buildbench.analyze.stats import latency_quantiles, summarize
from buildbench.record import (
    BuildRecord,
    CellRecord,
    Figures,
    Latency,
    LoadLevel,
    ModelDetail,
    Parity,
    Quantiles,
    RateStep,
    Served,
    SmokeResult,
    Summary,
    model_of,
)


def build_summary(record: CellRecord) -> Summary:
    return summarize(record.build.seconds)


def cold_start_summary(smoke: SmokeResult) -> Summary:
    return summarize(smoke.cold_start_seconds)


def quantiles(latency: Latency) -> Quantiles:
    return latency_quantiles(latency.samples)


def worst_parity(model: ModelDetail) -> Parity | None:
    """The worst parity over the batch sizes."""
    return _worst(list(model.parity.values()))


def cell_parity(smoke: SmokeResult) -> Parity | None:
    """The worst parity of every model a cell ran (a cell's one figure: the CSV's)."""
    first = model_of(smoke)
    return _worst(
        [p for one in (first, *map(model_of, first.more_models)) for p in one.parity.values()]
    )


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
    model = model_of(smoke)
    return bool(model.cuda_build) and not model.gpu_used


# What results.json writes beside each value's samples (results.results_document).
FIGURES: Figures = {
    BuildRecord: lambda build: {"stats": summarize(build.seconds)},
    Latency: lambda latency: {"quantiles": quantiles(latency)},
    ModelDetail: lambda model: {"parity_summary": worst_parity(model)},
    LoadLevel: lambda level: {
        "quantiles": level_quantiles(level),
        "throughput": throughput(level),
    },
    RateStep: lambda step: {"quantiles": rate_quantiles(step), "throughput": rate_throughput(step)},
    Served: lambda served: {"knee": knee(served), "rate_at_slo": served.rate_at_slo()},
}
