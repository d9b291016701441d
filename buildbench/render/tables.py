"""Tidy views of results: one row per cell, scalar columns only (samples joined with ';').

The results CSV, `report --format csv` and the cells of `report --format json` are this frame.
A run writes its results.csv after every cell without pandas (`csv_text`: the same text that
the frame's `to_csv` writes): importing pandas costs a run more than all its CSVs.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildbench.analyze.course import labelled
from buildbench.analyze.derived import build_summary, cell_parity, cold_start_summary, quantiles
from buildbench.analyze.metrics import latency
from buildbench.analyze.stats import coefficient_of_variation
from buildbench.record import CellRecord, RunInfo, model_of
from buildbench.results import RunResults, atomic_write

if TYPE_CHECKING:
    import pandas as pd

RESULTS_CSV = "results.csv"


def _samples(values: Sequence[float]) -> str:
    return ";".join(f"{v:.6g}" for v in values)


def cell_row(run: RunInfo, machine: str, r: CellRecord) -> dict[str, Any]:
    build = build_summary(r)
    image = r.image
    smoke = r.smoke
    parity = cell_parity(smoke) if smoke else None  # every model's
    found = latency(r, "1")
    b1 = quantiles(found) if found else None
    cold = cold_start_summary(smoke) if smoke else None
    contents = r.contents
    shipping = r.registry
    return {
        "run_id": run.run_id,
        "machine": machine,
        "engine": run.engine.endpoint,
        "name": r.name,
        "framework": r.framework,
        "variant": r.variant,
        "builder": r.builder,
        "status": r.status.value,
        "error": r.error,
        "build_mode": r.build.mode,
        "build_seconds_median": build.median,
        "build_seconds_ci_low": build.ci_low,
        "build_seconds_ci_high": build.ci_high,
        "build_seconds_min": build.min,
        "build_seconds_max": build.max,
        "build_seconds_n": build.n,
        "build_seconds_cv": coefficient_of_variation(r.build.seconds),
        "build_seconds_samples": _samples(r.build.seconds),
        "download_bytes": r.build.download.bytes if r.build.download else None,
        "download_seconds": r.build.download.seconds if r.build.download else None,
        "context_bytes": r.build.context_bytes,
        "image_size_bytes": image.size_bytes if image else None,
        "bytes_over_base": image.bytes_over_base if image else None,
        "compressed_size_bytes": image.compressed_size_bytes if image else None,
        "compressed_size_source": image.compressed_size_source if image else None,
        "layers": image.layers if image else None,
        "framework_version": image.framework_version if image else None,
        "python_version": image.python_version if image else None,
        "wasted_bytes": contents.wasted_bytes if contents else None,
        "efficiency": contents.efficiency if contents else None,
        "cuda_libraries_bytes": contents.cuda_libraries_bytes if contents else None,
        "image_id": r.image_id,
        "config_hash": r.config_hash,
        "smoke_status": smoke.status.value if smoke else None,
        "parity_ok": parity.ok if parity else None,
        "parity_max_abs_diff": parity.max_abs_diff if parity else None,
        "p50_b1_seconds": b1.p50 if b1 else None,
        "p95_b1_seconds": b1.p95 if b1 else None,
        "p99_b1_seconds": b1.p99 if b1 else None,
        "latency_b1_n": b1.n if b1 else None,
        "cold_start_seconds_median": cold.median if cold else None,
        "cold_start_seconds_samples": _samples(smoke.cold_start_seconds) if smoke else None,
        "peak_memory_bytes": smoke.peak_memory_bytes if smoke else None,
        "cuda_build": model_of(smoke).cuda_build,
        "gpu_used": model_of(smoke).gpu_used,
        "push_seconds": shipping.push_seconds if shipping else None,
        "pull_seconds": shipping.pull_seconds if shipping else None,
        "cold_pull_seconds": shipping.cold_pull_seconds if shipping else None,
        "registry_bytes": shipping.stored_bytes if shipping else None,
        "warnings": " | ".join(r.warnings),
    }


def cells_frame(runs: Sequence[RunResults]) -> pd.DataFrame:
    """One row per cell of every run."""
    import pandas as pd  # a quarter of a second: paid when a table is written, not at start-up

    rows = [
        cell_row(run.info, machine, record)
        for machine, run in labelled(runs)
        for record in run.records
    ]
    if not rows:
        return pd.DataFrame()
    # Nullable dtypes: byte counts stay integers where a failed cell has none.
    return pd.DataFrame(rows).convert_dtypes()


def write_cells_csv(run_dir: Path, run: RunResults) -> Path:
    """Rewrite run_dir's results.csv (one row per cell), atomically."""
    path = run_dir / RESULTS_CSV
    rows = [cell_row(run.info, machine, r) for machine, one in labelled([run]) for r in one.records]
    atomic_write(path, csv_text(rows))
    return path


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """`cells_frame`'s `to_csv(index=False)` of these rows, written by the csv module: each
    column's values formatted as the frame's `convert_dtypes` types them (tests/unit/test_tables.py
    holds the two to the same text)."""
    if not rows:
        return "\n"
    names = list(dict.fromkeys(name for row in rows for name in row))
    columns = [_column([row.get(name) for row in rows]) for name in names]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    writer.writerows(zip(*columns, strict=True))
    return buffer.getvalue()


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _column(values: Iterable[object]) -> list[str]:
    """One column's text: a column of numbers that are all whole is written as integers (pandas'
    Int64), else every number as a float (Float64: 3 -> 3.0); booleans and strings as they
    are; a column of mixed kinds value by value (object); missing values empty."""
    values = list(values)
    present = [v for v in values if not _missing(v)]
    numbers = [v for v in present if isinstance(v, int | float) and not isinstance(v, bool)]
    if present and len(numbers) == len(present):
        whole = all(float(v).is_integer() and abs(v) < 2**63 for v in numbers)
        text = (lambda v: str(int(v))) if whole else (lambda v: repr(float(v)))
        return ["" if _missing(v) else text(v) for v in values]
    return ["" if _missing(v) else str(v) for v in values]
