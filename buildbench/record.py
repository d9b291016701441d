"""What a run records: plain dataclasses that serialise to the results schema (see README)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1

# Cell statuses, in pipeline order. Anything but "ok" makes `buildbench run` exit non-zero.
OK = "ok"
BUILD_FAILED = "build_failed"
MEASURE_FAILED = "measure_failed"
SMOKE_FAILED = "smoke_failed"
SMOKE_TIMEOUT = "smoke_timeout"
INVALID_VARIANT = "invalid_variant"
INTERRUPTED = "interrupted"
ENGINE_LOST = "engine_lost"
ERROR = "error"  # anything unexpected: the message says what


def summarize(samples: list[float]) -> dict[str, float | int | None]:
    """hyperfine-style statistics of raw samples; stddev is None for a single sample."""
    if not samples:
        return {"n": 0, "median": None, "mean": None, "min": None, "max": None, "stddev": None}
    return {
        "n": len(samples),
        "median": statistics.median(samples),
        "mean": statistics.fmean(samples),
        "min": min(samples),
        "max": max(samples),
        "stddev": statistics.stdev(samples) if len(samples) > 1 else None,
    }


@dataclass
class Step:
    """One Dockerfile instruction and its duration in each build sample."""

    index: int
    instruction: str
    seconds: list[float] = field(default_factory=list)


@dataclass
class CellRecord:
    name: str
    variant: str
    framework: str | None
    status: str
    dockerfile: str
    build_args: dict[str, str]
    config_hash: str
    builder: str = "classic"
    build_seconds: list[float] = field(default_factory=list)
    # Time from the build request to the engine's first output: context upload and unpacking.
    first_output_seconds: list[float] = field(default_factory=list)
    context_bytes: int | None = None
    image_id: str | None = None
    image_tag: str | None = None
    image_size_bytes: int | None = None
    layers: int | None = None
    base_image_id: str | None = None
    bytes_over_base: int | None = None
    compressed_size_bytes: int | None = None
    framework_version: str | None = None
    python_version: str | None = None
    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    log_tail: list[str] = field(default_factory=list)
    smoke: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.name}/{self.variant}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["build_stats"] = summarize(self.build_seconds)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellRecord:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["steps"] = [Step(**s) for s in data.get("steps", [])]
        return cls(**fields)


@dataclass
class RunInfo:
    run_id: str
    started_at: str
    host: str
    cpu: str
    cpu_count: int
    memory_bytes: int | None
    engine_version: str
    engine_api_version: str
    engine_os: str
    storage_driver: str
    builder: str
    buildbench_version: str
    git_commit: str | None
    base_image: str
    base_image_id: str | None
    options: dict[str, Any] = field(default_factory=dict)
    finished_at: str | None = None
    # What the build times include and leave out, stated with the numbers.
    timing: str = (
        "wall clock from the build request to the final image id, no cache; includes context "
        "upload (see first_output_seconds); excludes pulling the base image, which is local "
        "before timing starts"
    )
    exit_reason: str | None = None  # completed, interrupted or engine_lost; None while running
