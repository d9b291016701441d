"""What every kind of smoke test shares: its options, the protocol a kind implements, and the
reading of a container's outcome.

A kind is one module (`inference.py`: a model in the image's framework; `command.py`: a
config's own command) with one class that implements `SmokeKind`:

- `check()` refuses, before anything is built, what the kind cannot do on this host;
- `payload()` names the files that travel to the engine (a tar, made once per run on the host
  and unpacked into a volume of the engine's, mounted read-only at `MOUNT`: never a host path,
  so any engine works), or None;
- `run(ctx)` runs its containers in the image and parses what they report into a
  `SmokeResult`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from buildbench.engine.api import ContainerOutcome, Engine, EngineInfo
from buildbench.measure.smoke.modelspec import ModelRequest
from buildbench.measure.smoke.program import PROGRESS_PREFIX, RESULT_PREFIX
from buildbench.record import SmokeResult
from buildbench.status import Status

MOUNT = "/buildbench"
Gpus = Literal["auto", "all", "none"]
_TAIL_LINES = 15


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
    ort_settings: tuple[str, ...] = ()  # runtime settings beyond the default (see inference.py)
    threads: tuple[int, ...] = ()
    frameworks: tuple[str, ...] = ("pytorch", "onnx")  # the run's (--framework)


def wants_gpus(info: EngineInfo, gpus: Gpus) -> bool:
    """auto: request GPUs only where the engine has an NVIDIA runtime."""
    return gpus == "all" or (gpus == "auto" and info.has_nvidia_runtime)


@dataclass(frozen=True)
class Payload:
    """Files a kind's containers need: one volume per `key` and run, filled from `make()`."""

    key: str  # what the files are (their content): cells that share it share the volume
    make: Callable[[], bytes]  # a tar archive, every file readable by a non-root user
    describe: str  # what making it does, for the run's log


@dataclass(frozen=True)
class SmokeContext:
    """Where and how a kind runs: the engine, the image under test, its payload's volume."""

    engine: Engine
    image: str
    options: SmokeOptions
    labels: dict[str, str]
    gpus: bool
    volume: str | None  # the payload's volume (mounted at MOUNT); None without a payload
    on_progress: Callable[[str], None] = lambda text: None


class SmokeKind(Protocol):
    def check(self) -> None:
        """Raise UsageError now, before any build, for what this kind cannot do here."""

    def payload(self) -> Payload | None: ...

    def run(self, ctx: SmokeContext) -> SmokeResult: ...


def output_tail(outcome: ContainerOutcome) -> list[str]:
    """The container's last lines, without the program's own protocol lines."""
    text = (outcome.stderr + "\n" + outcome.stdout).strip().splitlines()
    skip = (RESULT_PREFIX, PROGRESS_PREFIX)
    return [line for line in text if not line.startswith(skip)][-_TAIL_LINES:]


def program_report(outcome: ContainerOutcome) -> dict[str, Any] | None:
    """The last `RESULT_PREFIX` JSON line a program printed, or None."""
    for line in reversed(outcome.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            found = json.loads(line[len(RESULT_PREFIX) :])
            return found if isinstance(found, dict) else None
    return None


def relay_progress(on_progress: Callable[[str], None]) -> Callable[[str], None]:
    """A stderr sink that passes a program's `PROGRESS_PREFIX` lines on."""

    def relay(line: str) -> None:
        if line.startswith(PROGRESS_PREFIX):
            on_progress(line.removeprefix(PROGRESS_PREFIX))

    return relay


def killed(outcome: ContainerOutcome) -> tuple[Status, str] | None:
    """Why the container did not get to report, when the engine stopped it."""
    if outcome.timed_out:
        seconds = f"{outcome.seconds:.0f} s"
        return Status.SMOKE_TIMEOUT, f"no result within {seconds}: the container was killed"
    if outcome.oom_killed:
        return Status.SMOKE_FAILED, "the container was killed for memory (raise --smoke-memory)"
    return None
