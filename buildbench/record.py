"""What a run records: typed values that serialise to the results schema (see README).

Each stage of a cell returns one of these values (a build, the image's measurement, its smoke
test, its trip through a registry); the pipeline applies them to the cell's `CellRecord` in one
place. JSON is the contract: `to_json` writes plain dicts and `from_json` reads them back, both
through one cattrs converter (unknown keys ignored, missing ones defaulted). Values hold what
was measured; statistics derived from raw samples are computed by `buildbench.analyze`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypeVar

import cattrs

from buildbench.status import ExitReason, Status

SCHEMA_VERSION = 5
# The built-in images, and the frameworks a model smoke test runs in.
FRAMEWORKS = ("pytorch", "onnx")

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Statistics of raw samples (computed by buildbench.analyze.stats)

CiMethod = Literal["order-statistic", "min-max"]


@dataclass(frozen=True)
class Summary:
    """Location and spread of raw samples; the interval is the median's."""

    n: int
    median: float | None = None
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    stddev: float | None = None  # sample standard deviation; None below 2 samples
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float | None = None  # the coverage achieved, which may be below 95%
    ci_method: CiMethod | None = None


@dataclass(frozen=True)
class Interval:
    """An order-statistic confidence interval and the coverage it actually achieves."""

    low: float
    high: float
    level: float


@dataclass(frozen=True)
class Quantiles:
    """p50, p95 and p99 of latency samples, each with its order-statistic interval at 95%.

    Tail intervals need many samples: p95 reaches 95% coverage from 71 samples on, p99 from
    348; below that the interval runs to the maximum and `level` says how much less it covers
    (p99 of 30 samples: [x(28), x(30)] at 26%).
    """

    n: int
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    p50_ci: Interval | None = None
    p95_ci: Interval | None = None
    p99_ci: Interval | None = None


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
    # From the build request until the context was packed and sent (packed as it goes, inside
    # the timed build, as `docker build` does); None: not recorded (schema 3 and older, when
    # packing was done before timing and not counted).
    context_seconds: list[float] | None = field(default_factory=list)
    context_bytes: int | None = None
    steps: list[Step] = field(default_factory=list)
    # network: pip downloads inside the timed build; prefetch: wheels fetched before timing.
    mode: BuildMode = "network"
    download: Download | None = None
    # Per sample: the engine host's CPU share in use in quarter-second windows just before and
    # just after it, while this run used none (the larger); empty where not measured (an
    # engine on another machine). Others' load, told apart from the build's own.
    cpu_others_share: list[float | None] = field(default_factory=list)


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
    """Timed inferences at one batch size: the raw samples (seconds) and how they were taken."""

    samples: list[float]
    warmup: int
    seconds: float  # how long the timed loop ran
    # The engine host's CPU used by others than the smoke container during the timed loop, as
    # a share of all of it (measure/smoke/cpuload.py); None where not measured.
    cpu_others_share: float | None = None


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


@dataclass(frozen=True)
class TensorInfo:
    """A model's input or output as the model declares it; a str dimension is symbolic."""

    name: str
    dtype: str
    shape: list[int | str] | None = None  # None: the model does not say (TorchScript)


@dataclass(frozen=True)
class ModelInfo:
    """The smoke test's model: where it came from and what it is (`sha256` tells models apart
    for `compare`)."""

    source: str  # as the user gave it: a path or module:callable
    kind: str  # onnx, pt2, torchscript, factory
    sha256: str  # its files (a factory: its module's source, callable and torch version)
    size_bytes: int  # the ONNX file with its external data, else the torch form
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    opset: int | None = None
    producer: str | None = None
    fixed_batch: int | None = None  # timed at this batch only, whatever --batch-sizes says
    # framework -> why its cells cannot run the model (no form of it for that framework)
    not_applicable: dict[str, str] = field(default_factory=dict)
    nodes: int | None = None  # of the ONNX graph as given, before any optimisation


@dataclass(frozen=True)
class OutputParity:
    """One output at one batch size against the host's reference: integers and booleans
    exactly, floats within atol + rtol * |reference|; `ratio` is the worst difference over
    what the tolerance allows (above 1 fails)."""

    max_abs_diff: float
    max_rel_diff: float
    ok: bool
    exact: bool = False
    mismatches: int = 0
    count: int = 0
    ratio: float = 0.0
    note: str | None = None  # a missing output, or another shape


@dataclass(frozen=True)
class RuntimeSetting:
    """The model under one runtime setting, in the same container: ONNX Runtime's graph
    optimisation level, online or offline-optimised, providers and intra-op threads (PyTorch:
    threads only)."""

    label: str  # e.g. "all", "extended offline", "threads=1"
    setting: dict[str, Any] = field(default_factory=dict)
    load_seconds: float | None = None  # the session (model) load under this setting
    latency: dict[str, Latency] = field(default_factory=dict)  # by batch size
    parity: Parity | None = None  # at the first batch size
    worst_output: str | None = None
    nodes_before: int | None = None  # the graph's nodes as given ...
    nodes_after: int | None = None  # ... and after optimisation at this level (saved, counted)
    optimise_seconds: float | None = None  # optimising and saving the model once
    providers: list[str] | None = None
    threads: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class LoadLevel:
    """One concurrency level of an HTTP service's load test: every good response's latency
    (seconds, from the request sent to the body read) and the errors by kind."""

    concurrency: int
    samples: list[float]
    seconds: float  # how long the measured part ran, after its warm-up
    warmup_seconds: float
    requests: int  # sent in the measured part, good or not
    # status (another status), body (the expected text missing), timeout, connection
    errors: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None  # the first bad answer: its kind, status and body's start


@dataclass(frozen=True)
class Served:
    """An HTTP service measured under load (the `http` smoke test): its cold start as a
    service, each concurrency level, and what it used."""

    request: str  # e.g. "POST /predict on port 8000"
    # From the service container's start request to its first 2xx on the ready path (or the
    # port accepting connections), and to the first good answer to the request.
    ready_seconds: float | None = None
    first_response_seconds: float | None = None
    levels: list[LoadLevel] = field(default_factory=list)
    peak_memory_bytes: int | None = None  # the service container's, from the engine's stats
    cpu_seconds: float | None = None  # the service's CPU time, start-up and load together
    exit_code: int | None = None  # when the service exited before the load was done
    user: str | None = None  # who the service ran as


SmokeKind = Literal["model", "command", "http"]


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
    served: Served | None = None  # the http kind's findings
    model: ModelInfo | None = None  # the model kind's model
    not_applicable: str | None = None  # why this cell cannot run the model (no form for it)
    outputs: dict[str, dict[str, OutputParity]] = field(default_factory=dict)  # batch -> name
    worst_output: dict[str, str] = field(default_factory=dict)  # by batch size
    settings: list[RuntimeSetting] = field(default_factory=list)  # the first is the default
    # A run with several --model: each further model's own result, in the order given.
    more_models: list[SmokeResult] = field(default_factory=list)


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
# What an image holds over its base, and what it wastes (measured by buildbench.measure)


class FindingKind(StrEnum):
    DELETED_LATER = "deleted_later"
    OVERWRITTEN_LATER = "overwritten_later"
    PIP_CACHE = "pip_cache"
    APT_CACHE = "apt_cache"
    APT_LISTS = "apt_lists"
    BYTECODE = "bytecode"
    TOOLCHAIN = "toolchain"
    DUPLICATE_LIBRARIES = "duplicate_libraries"
    TESTS_AND_DOCS = "tests_and_docs"


@dataclass(frozen=True)
class LayerShare:
    index: int
    instruction: str | None
    size_bytes: int


@dataclass(frozen=True)
class DistributionShare:
    """A Python distribution's files above the base image, as its RECORD lists them."""

    name: str
    version: str
    bytes: int
    layer: int | None = None  # the layer that installed it (wrote its RECORD); None: unknown

    @property
    def cuda(self) -> bool:
        return re.sub(r"[-_.]+", "-", self.name).lower().startswith("nvidia-")  # PEP 503


@dataclass(frozen=True)
class PackageShare:
    """A Debian package's files above the base image, as dpkg's file list names them."""

    name: str
    version: str
    bytes: int
    new: bool  # not installed in the base image (else upgraded or rewritten over it)
    layer: int | None = None  # the layer that installed it (wrote its file list); None: unknown


@dataclass(frozen=True)
class Attribution:
    """The bytes over the base image: distributions + packages + other == bytes_over_base."""

    bytes_over_base: int
    layers: list[LayerShare]
    distributions: list[DistributionShare]
    packages: list[PackageShare]
    # Other: files a later layer deleted or overwrote (still stored in their layer), and the
    # rest, owned by no RECORD and no dpkg list (plus any gap between the engine's figure and
    # the layers' file sizes, which is nil on overlay2).
    deleted_or_overwritten_bytes: int
    unowned_bytes: int

    @property
    def distributions_bytes(self) -> int:
        return sum(d.bytes for d in self.distributions)

    @property
    def packages_bytes(self) -> int:
        return sum(p.bytes for p in self.packages)

    @property
    def cuda_libraries_bytes(self) -> int:
        return sum(d.bytes for d in self.distributions if d.cuda)

    @property
    def other_bytes(self) -> int:
        return self.deleted_or_overwritten_bytes + self.unowned_bytes

    @property
    def layers_bytes(self) -> int:
        return sum(layer.size_bytes for layer in self.layers)


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    bytes: int
    paths: list[str]  # a few examples, biggest first
    instruction: str | None  # of the layer that wrote (most of) the bytes
    fix: str
    packages: list[str] = field(default_factory=list)  # the toolchain finding's packages


@dataclass(frozen=True)
class ImageContents:
    attribution: Attribution
    findings: list[Finding]  # largest first
    # Bytes stored in a layer but deleted or overwritten by a later one, all layers.
    wasted_bytes: int
    # As dive's: over every path, the smallest copy's bytes over all copies' (a deletion
    # counts as a copy of 0 bytes); 1.0 when nothing is written twice or deleted.
    efficiency: float

    @property
    def cuda_libraries_bytes(self) -> int:
        return self.attribution.cuda_libraries_bytes

    def top_distributions(self, n: int = 10) -> list[DistributionShare]:
        return sorted(self.attribution.distributions, key=lambda d: -d.bytes)[:n]

    def top_packages(self, n: int = 10) -> list[PackageShare]:
        return sorted(self.attribution.packages, key=lambda p: -p.bytes)[:n]

    def biggest_layers(self, n: int = 5) -> list[LayerShare]:
        return sorted(self.attribution.layers, key=lambda layer: -layer.size_bytes)[:n]


# ---------------------------------------------------------------------------------------------
# A cell, and a run


# ---------------------------------------------------------------------------------------------
# What inference touched, and the slim image made of it (--slim; measured by measure/trace.py
# and measure/slim.py)


@dataclass(frozen=True)
class TouchedShare:
    """One owner's bytes in the image (a distribution, a Debian package, a layer) and how many
    of them the smoke test touched."""

    name: str
    bytes: int
    touched_bytes: int
    version: str = ""


@dataclass(frozen=True)
class Untouched:
    """A distribution or directory the smoke test never touched: a candidate to cut."""

    kind: Literal["distribution", "directory"]
    name: str  # the distribution's name, or the directory's path
    bytes: int
    paths: list[str]  # its largest files: the evidence


@dataclass(frozen=True)
class Trace:
    """Every file of the image the smoke test's processes opened, listed, mapped or ran."""

    containers: int  # containers the smoke test ran
    processes: int  # traces collected (one per Python process)
    image_bytes: int  # the image's files, as the final filesystem shows them
    touched_bytes: int = 0  # of those: what the slim candidate keeps
    touched_files: int = 0
    untraced: list[str] = field(default_factory=list)  # what could not be traced, in words
    distributions: list[TouchedShare] = field(default_factory=list)
    packages: list[TouchedShare] = field(default_factory=list)
    layers: list[TouchedShare] = field(default_factory=list)
    untouched: list[Untouched] = field(default_factory=list)  # largest first
    file: str | None = None  # the paths, relative to the run's folder
    note: str | None = None  # why there is no candidate (e.g. the trace found nothing)


SlimStatus = Literal["proven", "failed", "unproven"]


@dataclass(frozen=True)
class SlimCandidate:
    """An image of only the traced files, with the original's config, smoke-tested again: a
    saving only when `proven` (its smoke test passed with parity)."""

    status: SlimStatus
    message: str
    tag: str | None = None
    image_id: str | None = None
    size_bytes: int | None = None
    compressed_size_bytes: int | None = None
    files: int = 0
    build_seconds: float = 0.0
    smoke: SmokeResult | None = None  # the same smoke test, on the candidate
    excluded: list[str] = field(default_factory=list)  # --slim-exclude patterns applied
    kept: bool = False  # left in the engine (--keep-images)


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


# ---------------------------------------------------------------------------------------------
# (De)serialisation: one converter for every value above

_converter = cattrs.Converter()


def _quantiles_json(q: Quantiles) -> dict[str, Any]:
    """Intervals flattened as the schema has them: `p95`, `p95_ci_low`, `p95_ci_high`, ..."""
    data: dict[str, Any] = {"n": q.n}
    for name in ("p50", "p95", "p99"):
        ci: Interval | None = getattr(q, f"{name}_ci")
        data[name] = getattr(q, name)
        data.update({f"{name}_ci_{k}": getattr(ci, k) if ci else None for k in _INTERVAL})
    return data


def _quantiles(data: dict[str, Any], _: type) -> Quantiles:
    def interval(name: str) -> Interval | None:
        low, high, level = (data.get(f"{name}_ci_{k}") for k in _INTERVAL)
        if low is None or high is None or level is None:
            return None
        return Interval(float(low), float(high), float(level))

    found = {name: data.get(name) for name in ("p50", "p95", "p99")}
    return Quantiles(
        n=int(data.get("n") or 0),
        **{k: None if v is None else float(v) for k, v in found.items()},
        p50_ci=interval("p50"),
        p95_ci=interval("p95"),
        p99_ci=interval("p99"),
    )


_INTERVAL = ("low", "high", "level")
_converter.register_unstructure_hook(Quantiles, _quantiles_json)
_converter.register_structure_hook(Quantiles, _quantiles)
# A model's dimension: a size, or the name of a symbolic one.
_converter.register_structure_hook(int | str, lambda value, _: value)


def to_json(value: Any) -> Any:
    """Plain JSON data (dicts, lists, strings, numbers) for any value of this module."""
    return _converter.unstructure(value)


def from_json(cls: type[T], data: Any) -> T:
    """The value `cls` from JSON data; unknown keys are ignored, missing ones defaulted.
    Raises ValueError (naming what is wrong) for data that does not fit."""
    try:
        return _converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        raise ValueError("; ".join(cattrs.transform_error(exc))) from None
