"""The results file: written atomically after every cell, read back with schema checks.

JSON is the contract; the CSV is a tidy view of it (one row per cell).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from buildbench.errors import UsageError
from buildbench.record import SCHEMA_VERSION, CellRecord, RunInfo, summarize

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp makes it private; results are for everyone to read
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def results_document(run: RunInfo, records: list[CellRecord]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "run": asdict(run),
        "results": [r.to_json() for r in records],
    }


def table(run: RunInfo, records: list[CellRecord]) -> pd.DataFrame:
    """One row per cell, scalar columns only (samples joined with ';')."""
    rows = []
    for r in records:
        stats = summarize(r.build_seconds)
        smoke = r.smoke or {}
        rows.append(
            {
                "run_id": run.run_id,
                "host": run.host,
                "name": r.name,
                "framework": r.framework,
                "variant": r.variant,
                "builder": r.builder,
                "status": r.status,
                "build_seconds_median": stats["median"],
                "build_seconds_min": stats["min"],
                "build_seconds_max": stats["max"],
                "build_seconds_stddev": stats["stddev"],
                "build_seconds_samples": ";".join(f"{s:.3f}" for s in r.build_seconds),
                "image_size_bytes": r.image_size_bytes,
                "bytes_over_base": r.bytes_over_base,
                "compressed_size_bytes": r.compressed_size_bytes,
                "layers": r.layers,
                "framework_version": r.framework_version,
                "python_version": r.python_version,
                "image_id": r.image_id,
                "config_hash": r.config_hash,
                "smoke_status": smoke.get("status"),
                "cuda_build": smoke.get("cuda_build"),
                "gpu_used": smoke.get("gpu_used"),
                "warnings": " | ".join(r.warnings),
            }
        )
    return pd.DataFrame(rows)


def write_results(run_dir: Path, run: RunInfo, records: list[CellRecord]) -> Path:
    """Rewrite results.json and results.csv in `run_dir`; each file is replaced atomically."""
    path = run_dir / RESULTS_JSON
    _atomic_write(path, json.dumps(results_document(run, records), indent=2) + "\n")
    _atomic_write(run_dir / RESULTS_CSV, table(run, records).to_csv(index=False))
    return path


def _v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 0 kept one build time per cell and no config hash ("" reads: not comparable)."""
    results = []
    for old in data["results"]:
        seconds = old.get("build_seconds")
        new = {"config_hash": "", **old, "build_seconds": [] if seconds is None else [seconds]}
        results.append(new)
    return {**data, "schema_version": 1, "results": results}


# Each step turns a document of schema N into one of schema N + 1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _v0_to_v1}


def migrate(data: dict[str, Any], source: str = "results") -> dict[str, Any]:
    """Bring a results document of an older schema up to SCHEMA_VERSION, one step at a time."""
    while data["schema_version"] < SCHEMA_VERSION:
        step = MIGRATIONS.get(data["schema_version"])
        if step is None:
            raise UsageError(
                f"{source} uses results schema {data['schema_version']}, older than any this "
                "buildbench reads",
                tip="run `buildbench run` again to get results of the current schema",
            )
        data = step(data)
    return data


def load_results(path: Path) -> tuple[RunInfo, list[CellRecord]]:
    """Read a results file (or a run directory holding one), refusing what it cannot trust."""
    if path.is_dir():
        path = path / RESULTS_JSON
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"no results file at {path}", tip="give a results.json or a run directory"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(
            f"{path} is not a readable results file ({exc})", tip="give a results.json"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("schema_version"), int):
        raise UsageError(f"{path} has no schema_version: not a buildbench results file")
    version = data["schema_version"]
    if version > SCHEMA_VERSION:
        raise UsageError(
            f"{path} uses results schema {version}, newer than this buildbench reads "
            f"({SCHEMA_VERSION})",
            tip="upgrade buildbench: pip install -U buildbench",
        )
    try:
        data = migrate(data, str(path))
        run = RunInfo(**{k: v for k, v in data["run"].items() if k in RunInfo.__dataclass_fields__})
        records = [CellRecord.from_json(r) for r in data["results"]]
    except (KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path} is malformed: {exc}", tip="give a results.json") from None
    return run, records
