"""The results file: its document made, written atomically after every cell, read back with
schema checks.

JSON is the contract: `results_document` makes it through the one converter, with the
figures derived from the samples written beside them (the CSV view is rendering's). Older
schemas are migrated one version at a time, newer ones refused (as asv does with its results).
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cattrs import Converter

from buildbench.errors import UsageError
from buildbench.record import (
    SCHEMA_VERSION,
    CellRecord,
    Figures,
    RunInfo,
    from_json,
    make_converter,
)

RESULTS_JSON = "results.json"


@dataclass(frozen=True)
class RunResults:
    """One results file: the run and its cells."""

    info: RunInfo
    records: list[CellRecord]


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: readers see the old file or the new, never half."""
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


def results_document(
    run: RunInfo, records: Sequence[CellRecord], figures: Figures | None = None
) -> dict[str, Any]:
    """results.json's document: the run and its cells, each value with the figures derived
    from it written beside its fields (`analyze.derived.FIGURES`: the statistics of samples)."""
    converter = _converter(tuple((figures or {}).items()))
    info = converter.unstructure(run)
    if run.shard is None:  # written for a slice (--shard) only: other runs' files are unchanged
        del info["shard"]
    return {
        "schema_version": SCHEMA_VERSION,
        "run": info,
        "results": [converter.unstructure(record) for record in records],
    }


@functools.cache
def _converter(figures: tuple[tuple[type, Callable[[Any], Mapping[str, Any]]], ...]) -> Converter:
    """One converter per set of figures, made once: making one, and the function per class it
    writes on first use, costs 20 times what it then takes to unstructure a run (45 ms against
    2 ms), and a run writes its results after every stage."""
    return make_converter(dict(figures))


def write_results(run_dir: Path, document: Mapping[str, Any]) -> Path:
    """Replace run_dir's results.json with `document`, atomically."""
    path = run_dir / RESULTS_JSON
    atomic_write(path, json.dumps(document, indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# Migrations: each step turns a document of schema N into one of schema N + 1.


def _v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 0 kept one build time per cell and no config hash ("" reads: not comparable)."""
    results = []
    for old in data["results"]:
        seconds = old.get("build_seconds")
        new = {"config_hash": "", **old, "build_seconds": [] if seconds is None else [seconds]}
        results.append(new)
    return {**data, "schema_version": 1, "results": results}


_V1_RUN_ENGINE = {
    "engine_version": "server_version",
    "engine_api_version": "api_version",
    "storage_driver": "storage_driver",
}
_V1_IMAGE = (
    "size_bytes",
    "layers",
    "base_image_id",
    "bytes_over_base",
    "compressed_size_bytes",
    "python_version",
    "framework_version",
)


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 nests a cell's figures by stage (build, image, smoke), records the engine as an
    object, keeps every cold start and latency sample with quantile intervals."""
    run = dict(data["run"])
    os_, _, arch = str(run.pop("engine_os", "")).partition("/")
    engine = {new: run.pop(old, "") for old, new in _V1_RUN_ENGINE.items()}
    run["engine"] = {
        **engine,
        "endpoint": "unknown (schema 1)",
        "name": run.get("host", ""),
        "os": os_,
        "arch": arch,
        "cpus": run.get("cpu_count"),
        "cpu_model": run.get("cpu"),
        "memory_bytes": run.get("memory_bytes"),
        "nvidia_runtime": None,
        "local": True,
    }
    run["latency_method"] = (
        "10 timed runs after 2 warm-ups (schema 1), quantiles of those samples; "
        "cold start: one container"
    )
    return {
        **data,
        "schema_version": 2,
        "run": run,
        "results": list(map(_v1_cell, data["results"])),
    }


def _v1_cell(old: dict[str, Any]) -> dict[str, Any]:
    cell = {
        k: old.get(k)
        for k in (
            "name",
            "variant",
            "framework",
            "dockerfile",
            "build_args",
            "config_hash",
            "builder",
            "status",
            "error",
            "image_tag",
            "image_id",
        )
    }
    cell["log_tail"] = old.get("log_tail") or []
    cell["warnings"] = old.get("warnings") or []
    cell["build"] = {
        "seconds": old.get("build_seconds") or [],
        "first_output_seconds": old.get("first_output_seconds") or [],
        "context_bytes": old.get("context_bytes"),
        "steps": old.get("steps") or [],
        "mode": "network",
    }
    if old.get("image_size_bytes") is not None:
        image = {k: old.get(k) for k in _V1_IMAGE[1:]}
        compressed = old.get("compressed_size_bytes")
        source = None if compressed is None else "estimate"
        image.update(size_bytes=old["image_size_bytes"], compressed_size_source=source)
        cell["image"] = image
    if old.get("smoke"):
        cell["smoke"] = _v1_smoke(old["smoke"])
    return cell


def _v1_smoke(old: dict[str, Any]) -> dict[str, Any]:
    smoke = dict(old)
    smoke["kind"] = "command" if old.get("command") else "model"
    cold = old.get("cold_start_seconds")
    smoke["cold_start_seconds"] = [] if cold is None else [cold]
    if isinstance(old.get("parity"), dict) and "ok" in old["parity"]:  # one check, no batches
        smoke["parity"] = {"1": old["parity"]}
    latency = {}
    for batch, found in (old.get("latency") or {}).items():
        samples = found.get("samples") or []
        latency[batch] = {
            "samples": samples,
            "warmup": 2,
            "seconds": sum(samples),
        }
    smoke["latency"] = latency
    network = old.get("network")
    if network and "interfaces" not in network:  # older probes only tried to connect
        smoke["network"] = {"interfaces": [], **network}
    return smoke


_V2_NO_GPU_WARNING = "no GPU: this CUDA image ran its inference on the CPU"


_V3_MODEL: dict[str, Any] = {
    "model": None,
    "not_applicable": None,
    "outputs": {},
    "worst_output": {},
    "settings": [],
    "more_models": [],
}


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 3 records the run's timeline (none before), and stops recording the no-GPU
    warning: readers derive it from the smoke fields (`cuda_build` and not `gpu_used`). A
    smoke test may be an HTTP service's (`served`: none before). A cell may carry what its
    smoke test touched and its slim candidate (`trace`, `slim`: none before). A model smoke
    test records its model, parity per output and runtime settings (none before). Builds and
    latency loops record the CPU others used meanwhile (none before)."""
    run = {"timeline": [], "wall_seconds": None, **data["run"]}
    return {
        **data,
        "schema_version": 3,
        "run": run,
        "results": list(map(_v3_cell, data["results"])),
    }


def _v3_cell(old: dict[str, Any]) -> dict[str, Any]:
    cell = {
        "trace": None,
        "slim": None,
        **old,
        "warnings": [w for w in old.get("warnings") or [] if w != _V2_NO_GPU_WARNING],
        "build": {"cpu_others_share": [], **old["build"]},
    }
    if smoke := old.get("smoke"):
        latency = {
            batch: {"cpu_others_share": None, **loop}
            for batch, loop in (smoke.get("latency") or {}).items()
        }
        cell["smoke"] = {"served": None, **_V3_MODEL, **smoke, "latency": latency}
    return cell


# What build times included before schema 4, for runs that did not say (schema 0).
_V3_BUILD_TIMING = (
    "wall clock from the build request to the final image id, no cache; includes context "
    "upload (see first_output_seconds); excludes pulling the base image, which is local "
    "before timing starts, and, with --prefetch, downloading the wheels"
)


def _v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 4 packs the context inside each timed build, as `docker build` does, and records
    how long packing and sending it took (`context_seconds`). Before, it was packed before the
    clock started and not timed: None, not measured (not zero); a run that did not state its
    timing gets the old statement, not the new one."""
    results = [
        {**old, "build": {**old["build"], "context_seconds": None}} for old in data["results"]
    ]
    run = {"timing": _V3_BUILD_TIMING, **data["run"]}
    return {**data, "schema_version": 4, "run": run, "results": results}


def _v4_to_v5(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 5 records the layer that installed each distribution and package of a cell's
    contents (`layer`: what `diff` and `compare` name as its step). Before: None, unknown."""
    return {**data, "schema_version": 5, "results": list(map(_v5_cell, data["results"]))}


def _v5_cell(old: dict[str, Any]) -> dict[str, Any]:
    contents = old.get("contents")
    if not contents:
        return old
    attribution = dict(contents["attribution"])
    for owners in ("distributions", "packages"):
        attribution[owners] = [{"layer": None, **o} for o in attribution.get(owners) or []]
    return {**old, "contents": {**contents, "attribution": attribution}}


# Schema 5's smoke fields: each kind's, the rest the header every kind shares.
_V5_HEADER = (
    "status",
    "message",
    "kind",
    "seconds",
    "output_tail",
    "python_version",
    "peak_memory_bytes",
    "cold_start_seconds",
)
_V5_MODEL = (
    "gpus_requested",
    "framework_version",
    "cuda_build",
    "gpu_used",
    "device",
    "cuda_version",
    "cudnn_version",
    "cuda_note",
    "providers",
    "available_providers",
    "parity",
    "latency",
    "startup",
    "network",
    "model",
    "not_applicable",
    "outputs",
    "worst_output",
    "settings",
    "parity_summary",  # derived, written beside the parity
)


def _v5_to_v6(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 6 types a smoke result: the header every kind shares, and under `detail` its
    kind's own fields (a model's variant, parity and latency; a command; a service's
    `served`), instead of every kind's fields side by side (the others' empty)."""
    return {
        **data,
        "schema_version": 6,
        "results": [_v6_cell(cell) for cell in data["results"]],
    }


def _v6_cell(old: dict[str, Any]) -> dict[str, Any]:
    cell = dict(old)
    if old.get("smoke"):
        cell["smoke"] = _v6_smoke(old["smoke"])
    if (old.get("slim") or {}).get("smoke"):  # the slim candidate's own smoke test
        cell["slim"] = {**old["slim"], "smoke": _v6_smoke(old["slim"]["smoke"])}
    return cell


def _v6_smoke(old: dict[str, Any]) -> dict[str, Any]:
    smoke = {key: old[key] for key in _V5_HEADER if key in old}
    kind = old.get("kind")
    detail: dict[str, Any] | None = None
    if kind == "model":
        detail = {key: old[key] for key in _V5_MODEL if key in old}
        detail["more_models"] = [_v6_smoke(more) for more in old.get("more_models") or []]
    elif kind == "command":
        detail = {"command": old.get("command") or []}
    elif kind == "http":
        detail = old.get("served")
    return {**smoke, "detail": detail}


def _v6_to_v7(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 7 adds to a service's detail the open-loop sweep (`rates`, against
    `slo_p95_seconds`) and the server's `batching`. Before: no sweep, batching unknown."""
    return {
        **data,
        "schema_version": 7,
        "results": [_v7_cell(cell) for cell in data["results"]],
    }


def _v7_cell(old: dict[str, Any]) -> dict[str, Any]:
    cell = dict(old)
    if old.get("smoke"):
        cell["smoke"] = _v7_smoke(old["smoke"])
    if (old.get("slim") or {}).get("smoke"):  # the slim candidate's own smoke test
        cell["slim"] = {**old["slim"], "smoke": _v7_smoke(old["slim"]["smoke"])}
    return cell


def _v7_smoke(old: dict[str, Any]) -> dict[str, Any]:
    if old.get("kind") != "http" or not old.get("detail"):
        return old
    new: dict[str, Any] = {"slo_p95_seconds": None, "rates": [], "batching": None}
    return {**old, "detail": {**old["detail"], **new}}


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    0: _v0_to_v1,
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
    5: _v5_to_v6,
    6: _v6_to_v7,
}


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


def results_files(paths: Sequence[Path]) -> list[Path]:
    """Results files named directly, or found in run directories and results directories."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir() and not (path / RESULTS_JSON).is_file():
            nested = sorted(path.glob(f"**/{RESULTS_JSON}"))
            if not nested:
                raise UsageError(
                    f"no {RESULTS_JSON} in {path}", tip="give results files or run directories"
                )
            found += nested
        else:
            found.append(path)
    return found


def newest_run(results_dir: Path) -> RunResults | None:
    """The newest readable run in a results folder (run ids sort by their start time)."""
    for path in sorted(results_dir.glob(f"**/{RESULTS_JSON}"), reverse=True):
        try:
            return load_results(path)
        except UsageError:
            continue
    return None


def load_results(path: Path) -> RunResults:
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
        run = from_json(RunInfo, data["run"])
        records = [from_json(CellRecord, r) for r in data["results"]]
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise UsageError(f"{path} is malformed: {exc!r}", tip="give a results.json") from None
    return RunResults(run, records)
