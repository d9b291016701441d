"""A busy machine: how much of the engine host's CPU others used while a cell's phases were
timed (measured in `measure/smoke/cpuload.py`), and what a run, `compare` and `history` make of
it: the run warns on the cell, `compare` marks the figure instead of judging it, `history`
leaves the run out of the series."""

from __future__ import annotations

from typing import TYPE_CHECKING

from buildbench.record import CellRecord, model_of

if TYPE_CHECKING:  # the run's warnings need no statistics (analyze/metrics.py imports numpy)
    from buildbench.analyze.metrics import Metric

# Others using more than this share of the engine host's CPU during a timed phase make it noisy
# (on 2 cores, a quarter is half a core taken from what was timed): marked, never judged.
BUSY_SHARE = 0.25


def others_share(record: CellRecord, metric: Metric) -> float | None:
    """The largest share of the engine host's CPU others used during the phase `metric` times
    (build samples, the batch-1 latency loop); None where it was not measured."""
    shares: list[float | None] = []
    if metric.key == "build_seconds":
        shares = list(record.build.cpu_others_share)
    elif metric.key == "latency_b1_seconds" and "1" in model_of(record.smoke).latency:
        shares = [model_of(record.smoke).latency["1"].cpu_others_share]
    known = [share for share in shares if share is not None]
    return max(known) if known else None


def interference_warnings(record: CellRecord) -> list[str]:
    """What the terminal and the report say of a cell whose timed phases shared the machine."""
    found = []
    build = [share for share in record.build.cpu_others_share if share is not None]
    if build and max(build) > BUSY_SHARE:
        found.append(
            f"busy machine: others used up to {max(build):.0%} of the engine host's CPU around "
            f"the build samples (over {BUSY_SHARE:.0%}): build times are noisy"
        )
    for batch, latency in model_of(record.smoke).latency.items():
        share = latency.cpu_others_share
        if share is not None and share > BUSY_SHARE:
            found.append(
                f"busy machine: others used {share:.0%} of the engine host's CPU during the "
                f"batch-{batch} latency loop (over {BUSY_SHARE:.0%}): its latency is noisy"
            )
    return found
