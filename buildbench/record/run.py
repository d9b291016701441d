"""A cell, and a run: what results.json holds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from buildbench.record.build import BuildRecord, ImageFacts, Shipping
from buildbench.record.contents import ImageContents
from buildbench.record.slim import SlimCandidate, Trace
from buildbench.record.smoke import SmokeResult
from buildbench.status import ExitReason, Status


@dataclass
class CellRecord:
    name: str
    variant: str
    framework: str | None
    dockerfile: str
    build_args: dict[str, str]
    config_hash: str
    builder: str = "classic"
    status: Status = Status.OK
    error: str | None = None
    log_tail: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    image_tag: str | None = None
    image_id: str | None = None
    build: BuildRecord = field(default_factory=BuildRecord)
    image: ImageFacts | None = None
    contents: ImageContents | None = None
    smoke: SmokeResult | None = None
    registry: Shipping | None = None
    trace: Trace | None = None  # --slim
    slim: SlimCandidate | None = None  # --slim

    @property
    def key(self) -> str:
        return cell_key(self.name, self.variant)

    def fail(self, status: Status, error: str, log_tail: list[str] | None = None) -> None:
        """The cell's outcome, when it is not ok: the first failure is the one that counts."""
        if self.status == Status.OK:
            self.status, self.error = status, error
            if log_tail is not None:
                self.log_tail = log_tail

    def warn(self, *warnings: str) -> None:
        self.warnings.extend(w for w in warnings if w not in self.warnings)


def cell_key(name: str, variant: str) -> str:
    return f"{name}/{variant}"


@dataclass(frozen=True)
class EngineFacts:
    """The engine a run used, as it describes itself (`docker version` / `docker info`)."""

    endpoint: str  # credentials masked
    name: str  # the engine machine's host name
    server_version: str
    api_version: str
    os: str
    arch: str
    kernel: str = ""
    storage_driver: str = ""
    cpus: int | None = None
    cpu_model: str | None = None  # read inside a container: the engine machine's CPU
    memory_bytes: int | None = None
    nvidia_runtime: bool | None = None  # None: not recorded (older results)
    local: bool = True  # a unix socket on this machine; else tcp://, ssh://, ...


BUILD_TIMING = (
    "wall clock from the build request to the final image id, no cache; includes packing "
    "and sending the context, as docker build does (see context_seconds and "
    "first_output_seconds); excludes pulling the base image, which is local "
    "before timing starts, and, with --prefetch, downloading the wheels"
)
LATENCY_METHOD = (
    "per batch size: warm-up runs, then timed runs until at least the minimum number of "
    "runs and the minimum time; quantiles are type-7 (linear), their intervals order-statistic "
    "at 95%; cold start: one fresh container each, start request to first model output"
)


@dataclass(frozen=True)
class Phase:
    """A stretch of a run's wall time: what the run was doing, from `start` (seconds after the
    run began) for `seconds`, for which cell, and the stage within it."""

    name: str  # preflight, model preparation, build, measure, smoke, shipping, clean-up, ...
    start: float
    seconds: float
    cell: str | None = None
    detail: str | None = None  # "sample 2 of 3", "timing batch size 8", "cold start 2 of 3"


@dataclass(frozen=True)
class Shard:
    """A slice of a run that several jobs share (`run --shard K/N`): slice `index` of `count`,
    of the run every slice names by `run`, whose cells (all slices') are `cells`."""

    index: int  # K, from 1
    count: int  # N
    run: str  # the identity the slices of one run share: what `report` merges them by
    cells: tuple[str, ...] = ()  # every cell key of the whole run, in the matrix's order
    merged: tuple[int, ...] = ()  # in a merged report: the slices it holds (a file: none)

    def slice_of(self, key: str) -> int:
        """The slice (1..count) that runs cell `key`: the run's cells in the order of a hash
        of their keys, dealt out in turn. It depends on the set of cells alone, not on the order
        options came in, and evens the slices' counts (a hash alone could leave one empty)."""
        order = sorted(self.cells, key=lambda k: (hashlib.sha256(k.encode()).hexdigest(), k))
        return order.index(key) % self.count + 1

    def owns(self, key: str) -> bool:
        return self.slice_of(key) == self.index


@dataclass
class RunInfo:
    run_id: str
    started_at: str
    host: str  # the machine buildbench ran on (the client)
    cpu: str
    cpu_count: int
    memory_bytes: int | None
    engine: EngineFacts
    builder: str
    buildbench_version: str
    git_commit: str | None
    base_image: str
    base_image_id: str | None
    options: dict[str, Any] = field(default_factory=dict)
    pip: dict[str, Any] = field(default_factory=dict)  # what the builder stage's pip was given
    label: str | None = None  # --machine: a stable name for reports and history
    shard: Shard | None = None  # --shard: this file holds one slice of a run
    finished_at: str | None = None
    exit_reason: ExitReason | None = None  # None while running
    # Every phase of the run, back to back: they add up to wall_seconds.
    timeline: list[Phase] = field(default_factory=list)
    wall_seconds: float | None = None  # None while running
    # What the numbers include and leave out, stated with them.
    timing: str = BUILD_TIMING
    latency_method: str = LATENCY_METHOD

    @property
    def machine(self) -> str:
        """Where the images were built and run: --machine, else the engine's host name."""
        return self.label or self.engine.name or self.host
