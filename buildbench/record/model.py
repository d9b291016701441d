"""The model kind's detail: a model run in the image's framework, its parity, latency and
start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from buildbench.record.smoke import COLD_START, SmokeDetail, SmokeMetric, SmokeResult


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
    threads, and the form: eager, torchscript, export)."""

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
    # A PyTorch form's start-ups, each in a fresh container that loads that form alone (the
    # first setting's: the cell's own start-ups).
    startup: list[Startup] = field(default_factory=list)
    note: str | None = None  # e.g. why the headline is not the eager form


@dataclass(frozen=True)
class ModelDetail(SmokeDetail):
    """A model in the image's framework: the image's real variant, parity per batch size and
    output, latency per batch size and runtime setting, and start-up split by phase."""

    metrics: ClassVar[tuple[SmokeMetric, ...]] = (
        SmokeMetric("p50 latency b=1", "latency_b1_seconds", "ms", lambda r: _latency(r, "1")),
        COLD_START,
    )

    gpus_requested: bool = False
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
    startup: list[Startup] = field(default_factory=list)
    network: NetworkProbe | None = None
    model: ModelInfo | None = None
    not_applicable: str | None = None  # why this cell cannot run the model (no form for it)
    outputs: dict[str, dict[str, OutputParity]] = field(default_factory=dict)  # batch -> name
    worst_output: dict[str, str] = field(default_factory=dict)  # by batch size
    settings: list[RuntimeSetting] = field(default_factory=list)  # the first is the default
    # A run with several --model: each further model's own result, in the order given.
    more_models: list[SmokeResult] = field(default_factory=list)

    def identity(self) -> tuple[str, ...]:
        """The model's files' sha256: another model is another test."""
        return (self.model.sha256,) if self.model else ()


def model_of(smoke: SmokeResult | None) -> ModelDetail:
    """A smoke result's model detail; an empty one for another kind or none (no latency, no
    parity), so that readers of model figures need not ask which kind ran."""
    found = smoke.of(ModelDetail) if smoke else None
    return found or ModelDetail()


def _latency(smoke: SmokeResult, batch: str) -> list[float]:
    found = model_of(smoke).latency.get(batch)
    return list(found.samples) if found else []
