"""The run's smoke options (`--smoke-*`, `--model`, `--batch-sizes`, ...): what the run hands
each kind when it makes the kind's smoke test for a cell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from buildbench.engine.api import EngineInfo

Gpus = Literal["auto", "all", "none"]


@dataclass(frozen=True)
class ModelRequest:
    """A model as a run asks for it (`--model` with its `--input`s, or a `[[model]]` table):
    plain text until the model kind's `modelcache.load_requests` reads it."""

    spec: str
    inputs: tuple[str, ...] = ()  # NAME=DIMS[:DTYPE][:LOW-HIGH]
    base: str | None = None  # the folder a relative path is taken from (a config file's)


@dataclass(frozen=True)
class SmokeOptions:
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    gpus: Gpus = "auto"
    timeout_seconds: float = 300.0
    memory_bytes: int = 6 * 1024**3
    warmup: int = 3
    min_runs: int = 30  # timed runs per batch size, at least ...
    min_seconds: float = 2.0  # ... and for at least this long
    cold_starts: int = 3  # fresh containers, each timed from its start request
    models: tuple[ModelRequest, ...] = ()  # --model / [[model]]; none: ResNet-18
    ort_settings: tuple[str, ...] = ()  # runtime settings beyond the default (model kind)
    threads: tuple[int, ...] = ()
    torch_forms: tuple[str, ...] = ()  # PyTorch's forms timed side by side (model kind)
    # the run's (--framework); the default: measure/runtimes' DEFAULT_NAMES, not imported here
    # (the shared protocol leans on no kind's modules; test_runtimes.py holds them equal)
    frameworks: tuple[str, ...] = ("pytorch", "onnx")
    slo_p95_ms: float | None = None  # --slo-p95: sweep every service's arrival rate against it
    # A built-in server's load (--server): concurrency levels, and seconds per level.
    serve_concurrency: tuple[int, ...] = (1, 4, 16)
    serve_seconds: float = 10.0


def wants_gpus(info: EngineInfo, gpus: Gpus) -> bool:
    """auto: request GPUs only where the engine has an NVIDIA runtime."""
    return gpus == "all" or (gpus == "auto" and info.has_nvidia_runtime)
