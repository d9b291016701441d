"""What a serving framework is, host side (see `buildbench.measure.servers`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# Where the service finds the model: the run's payload volume, mounted read-only.
MODEL_DIR = "/buildbench/model"
# What the service reads of the model (serve.json in the volume): its file, inputs, outputs.
MODEL_META = "/buildbench/serve.json"


@dataclass(frozen=True)
class Tensor:
    """One input as generated on the host: raw bytes in C order."""

    name: str
    dtype: str  # numpy's name: float32, int64, bool, ...
    shape: tuple[int, ...]
    data: bytes


@dataclass(frozen=True)
class Request:
    """A request's body as encoded for a server, and what it is."""

    body: bytes
    headers: Mapping[str, str]


class Encoding(Protocol):
    """How a request is made from the model's inputs and how an answer is read back."""

    @property
    def name(self) -> str:
        """What was sent, for the results: e.g. "JSON, tensors as base64"."""

    def request(self, inputs: Sequence[Tensor]) -> Request: ...

    def decode(self, body: bytes, outputs: Sequence[str]) -> dict[str, Any]:
        """The answer's outputs by name, as numpy arrays; ValueError for an answer it cannot
        read (the message says why)."""


# The environment that turns a server's own batching on (read by its code in the image);
# without them it answers each request alone.
MAX_BATCH_ENV = "BUILDBENCH_MAX_BATCH"
MAX_DELAY_ENV = "BUILDBENCH_MAX_DELAY_MS"


@dataclass(frozen=True)
class ServerBatching:
    """A server's own batching, as buildbench turns it on: requests queued together up to
    `max_batch`, waiting at most `max_delay_ms` for a batch to fill."""

    max_batch: int = 8
    max_delay_ms: float = 5.0

    def environment(self) -> dict[str, str]:
        return {MAX_BATCH_ENV: str(self.max_batch), MAX_DELAY_ENV: f"{self.max_delay_ms:g}"}


@dataclass(frozen=True)
class Server:
    """A serving framework: its image, the model form it serves, how it is reached and what it
    needs to run locked down. One module under measure/servers each, named in `SERVERS`.

    The image (dockerfiles/`dockerfile`, built with `CUDA` empty for the CPU variant and
    non-empty for CUDA, and `BASE_IMAGE`) starts the service with its own CMD, as a non-root
    user, on a read-only root with only `tmpfs` writable, no network and no capabilities. It
    finds the model in `MODEL_DIR` (its file is `$BUILDBENCH_MODEL`; inputs and outputs in
    `MODEL_META`, JSON), answers `GET ready` with a 2xx once it can serve, and `POST path`
    with the answer `encoding` reads."""

    name: str  # --server's value and the cell's name
    dockerfile: str  # in dockerfiles/, e.g. serve-fastapi.dockerfile
    encoding: Encoding
    port: int = 8000
    ready: str = "/health"
    path: str = "/predict"
    form: str = "onnx"  # the model form it serves: "onnx" or "torch" (PreparedModel's)
    # Its image installs torch as pytorch.dockerfile does: it takes the run's TORCH_VERSION and
    # TORCH_CPU_INDEX_URL (a CPU torch from the CPU index or a local wheel, not PyPI's CUDA one).
    torch: bool = False
    variants: tuple[str, ...] = ("cpu", "cuda")
    # The writable mounts it needs under a read-only root (path -> tmpfs options), and its
    # environment (HOME, caches), beside BUILDBENCH_MODEL and BUILDBENCH_MODEL_META.
    tmpfs: Mapping[str, str] = field(default_factory=lambda: {"/tmp": "size=256m"})
    environment: Mapping[str, str] = field(default_factory=lambda: {"HOME": "/tmp"})
    # Its processes' and threads' limit (a cluster of processes, each with its thread pools,
    # needs more than one server process).
    pids_limit: int = 256
    # What its Dockerfile installs per variant (keep in step with it), for --prefetch.
    packages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Why it cannot run here at all (say, not locked down): its cells are not applicable.
    unavailable: str | None = None
    # Its own batching, measured off and on in each cell; None: it has none, `no_batching` why.
    batching: ServerBatching | None = None
    # Whether its batching answers a tensor of one value a row (shape [batch]) in that shape:
    # Triton's batcher needs a dim past the batch axis and answers [batch, 1].
    batches_scalar_rows: bool = True
    no_batching: str = "it has no server-side batching: each request runs alone"

    def requirements(self, variant: str) -> tuple[str, ...]:
        return self.packages.get(variant, ())
