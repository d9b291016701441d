"""What a run records: typed values that serialise to the results schema (see README).

Each stage of a cell returns one of these values (a build, the image's measurement, its smoke
test, its trip through a registry); the pipeline applies them to the cell's `CellRecord` in one
place. JSON is the contract: `to_json` writes plain dicts, `from_json` reads them back, nested
dataclasses included, ignoring keys it does not know (derived figures such as `stats`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, TypeVar

from buildbench.analyze.stats import Quantiles, Summary, summarize
from buildbench.measure.contents import ImageContents
from buildbench.status import ExitReason, Status

SCHEMA_VERSION = 2

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# (De)serialisation of the dataclasses below


def to_json(value: Any) -> Any:
    """Plain JSON data: dataclasses become dicts (with `to_json` where a class has its own)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        own = getattr(value, "to_json", None)
        if own is not None:
            return own()
        return fields_json(value)
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def fields_json(value: Any) -> dict[str, Any]:
    """A dataclass's fields as JSON data (what a `to_json` of its own adds to)."""
    return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}


def from_json(cls: type[T], data: Any) -> T:
    """The dataclass `cls` from JSON data; unknown keys are ignored, missing ones defaulted."""
    own = getattr(cls, "from_json", None)
    if own is not None:
        return typing.cast(T, own(data))
    hints = _hints(typing.cast(type, cls))
    known = {f.name for f in dataclasses.fields(typing.cast(Any, cls))}
    kwargs = {k: _convert(hints[k], v) for k, v in data.items() if k in known}
    return cls(**kwargs)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        real = [a for a in args if a is not type(None)]
        return _convert(real[0], value) if len(real) == 1 else value
    if origin is list:
        return [_convert(args[0], v) for v in value]
    if origin is tuple:
        return tuple(_convert(args[0], v) for v in value)
    if origin is dict:
        return {k: _convert(args[1], v) for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_json(hint, value)
    if isinstance(hint, type) and issubclass(hint, Status | ExitReason):
        return hint(value)
    return value


# ---------------------------------------------------------------------------------------------
# A cell's build


@dataclass
class Step:
    """One Dockerfile instruction and its duration in each build sample."""

    index: int
    instruction: str
    seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Download:
    """What `--prefetch` downloaded before the timed builds: not part of any build time."""

    bytes: int
    seconds: float
    files: int


BuildMode = Literal["network", "prefetch"]


@dataclass
class BuildRecord:
    """Every no-cache build sample of a cell: raw times, per-step times, what crossed the wire."""

    seconds: list[float] = field(default_factory=list)
    # From the build request to the engine's first output: context upload and unpacking.
    first_output_seconds: list[float] = field(default_factory=list)
    context_bytes: int | None = None
    steps: list[Step] = field(default_factory=list)
    # network: pip downloads inside the timed build; prefetch: wheels fetched before timing.
    mode: BuildMode = "network"
    download: Download | None = None

    @property
    def stats(self) -> Summary:
        return summarize(self.seconds)

    def to_json(self) -> dict[str, Any]:
        return {**fields_json(self), "stats": self.stats.to_json()}


# ---------------------------------------------------------------------------------------------
# What the image is


@dataclass(frozen=True)
class ImageFacts:
    """A built image as the engine and a registry see it, and the versions inside it."""

    size_bytes: int
    layers: int
    base_image_id: str | None = None
    bytes_over_base: int | None = None
    compressed_size_bytes: int | None = None
    # estimate: layers gzip'd here; registry: the manifest's layer sizes (exact).
    compressed_size_source: Literal["estimate", "registry"] | None = None
    python_version: str | None = None
    framework_version: str | None = None


@dataclass(frozen=True)
class Measurement:
    """What measuring an image returns; the pipeline files it under `image` and `contents`."""

    image: ImageFacts
    contents: ImageContents | None = None
    warnings: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# The smoke test


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    max_rel_diff: float
    ok: bool


@dataclass(frozen=True)
class Latency:
    """Timed inferences at one batch size: raw samples, and quantiles with their intervals."""

    samples: list[float]
    quantiles: Quantiles
    warmup: int
    seconds: float  # how long the timed loop ran

    @property
    def p50(self) -> float | None:
        return self.quantiles.p50

    @property
    def p95(self) -> float | None:
        return self.quantiles.p95


@dataclass(frozen=True)
class Startup:
    """One fresh container, from the start request to its first inference, split by phase."""

    container_start: float  # start request -> the program's first instruction
    framework_import: float
    model_load: float  # weights and module, or the ONNX Runtime session
    first_inference: float

    @property
    def total(self) -> float:
        return self.container_start + self.framework_import + self.model_load + self.first_inference


@dataclass(frozen=True)
class NetworkProbe:
    """The smoke container's own view of its network: only `lo`, and a connection that fails."""

    interfaces: list[str]
    connection_failed: bool
    error: str | None = None

    @property
    def isolated(self) -> bool:
        return self.interfaces == ["lo"] and self.connection_failed


SmokeKind = Literal["model", "command"]


@dataclass(frozen=True)
class SmokeResult:
    """The verdict of a cell's smoke test and everything the containers reported."""

    status: Status
    message: str
    kind: SmokeKind
    seconds: float = 0.0
    output_tail: list[str] = field(default_factory=list)
    command: list[str] | None = None
    gpus_requested: bool = False
    python_version: str | None = None
    framework_version: str | None = None
    cuda_build: bool | None = None
    gpu_used: bool | None = None
    device: str | None = None
    cuda_version: str | None = None
    cudnn_version: int | None = None
    cuda_note: str | None = None
    providers: list[str] | None = None
    available_providers: list[str] | None = None
    parity: dict[str, Parity] = field(default_factory=dict)  # by batch size
    latency: dict[str, Latency] = field(default_factory=dict)  # by batch size
    # One fresh container each: seconds from the start request to the first model output.
    cold_start_seconds: list[float] = field(default_factory=list)
    startup: list[Startup] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    network: NetworkProbe | None = None

    @property
    def parity_summary(self) -> Parity | None:
        """The worst parity over the batch sizes."""
        if not self.parity:
            return None
        found = self.parity.values()
        return Parity(
            max(p.max_abs_diff for p in found),
            max(p.max_rel_diff for p in found),
            all(p.ok for p in found),
        )

    @property
    def cold_start(self) -> Summary:
        return summarize(self.cold_start_seconds)

    def to_json(self) -> dict[str, Any]:
        summary = self.parity_summary
        return {**fields_json(self), "parity_summary": to_json(summary) if summary else None}


# ---------------------------------------------------------------------------------------------
# A registry round trip


@dataclass(frozen=True)
class Shipping:
    """The image pushed to a registry and pulled back: what shipping it costs."""

    registry: str
    reference: str
    push_seconds: float
    stored_bytes: int  # the manifest's layer sizes: what the registry stores
    config_bytes: int
    # Pulled onto the engine after removing the image, the base image's layers kept.
    pull_seconds: float | None = None
    # Pulled with nothing local, base included (only where the base could be set aside).
    cold_pull_seconds: float | None = None
    note: str | None = None


# ---------------------------------------------------------------------------------------------
# A cell, and a run


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
    "wall clock from the build request to the final image id, no cache; includes context "
    "upload (see first_output_seconds); excludes pulling the base image, which is local "
    "before timing starts, and, with --prefetch, downloading the wheels"
)
LATENCY_METHOD = (
    "per batch size: warm-up runs, then timed runs until at least the minimum number of "
    "runs and the minimum time; quantiles are type-7 (linear), their intervals order-statistic "
    "at 95%; cold start: one fresh container each, start request to first model output"
)


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
    finished_at: str | None = None
    exit_reason: ExitReason | None = None  # None while running
    # What the numbers include and leave out, stated with them.
    timing: str = BUILD_TIMING
    latency_method: str = LATENCY_METHOD

    @property
    def machine(self) -> str:
        """Where the images were built and run: --machine, else the engine's host name."""
        return self.label or self.engine.name or self.host
