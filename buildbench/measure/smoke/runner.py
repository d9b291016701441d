"""What every kind of smoke test shares: the protocol a kind implements, the entry that names
it in the registry (`kinds/__init__.py`), and the reading of a container's outcome.

A kind is one package under `kinds/` (`model`: a model in the image's framework; `command`: a
config's own command; `http`: a service under load). It reads its own part of a config
(`Kind.read`, into a `SmokeConfig`), and per cell makes a `SmokeKind`:

- `check()` refuses, before anything is built, what the kind cannot do on this host;
- `payload()` names the files that travel to the engine (a tar, made once per run on the host
  and unpacked into a volume of the engine's, mounted read-only at `MOUNT`: never a host path,
  so any engine works), or None;
- `run(ctx)` runs its containers in the image and parses what they report into a
  `SmokeResult` (the common header and the kind's own detail).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from buildbench.engine.api import ContainerOutcome, Engine
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.measure.smoke.table import Where
from buildbench.record import SmokeResult
from buildbench.status import Status

MOUNT = "/buildbench"
# The lines a program in the image reports on (its own copies: it runs without buildbench).
RESULT_PREFIX = "BUILDBENCH_SMOKE_RESULT "
PROGRESS_PREFIX = "BUILDBENCH_PROGRESS "
_TAIL_LINES = 15


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


@dataclass(frozen=True)
class Idle:
    """Why a cell's image would be built for nothing: what it cannot run, and why, per item
    (a model's source: the reason it has no form for the cell)."""

    what: str
    reasons: Mapping[str, str]


class SmokeKind(Protocol):
    def check(self) -> None:
        """Raise UsageError now, before any build, for what this kind cannot do here."""

    def payload(self) -> Payload | None: ...

    def run(self, ctx: SmokeContext) -> SmokeResult: ...

    def idle(self) -> Idle | None:
        """Why the cell's image would be built for nothing (it could run none of what the run
        asks), or None."""


class SmokeConfig(Protocol):
    """A kind's part of a config, read and checked: one per image, shared by its cells."""

    @property
    def framework(self) -> str | None:
        """The image's framework, for `--framework` (a model kind's), else None."""

    def describe(self) -> str:
        """One line for `buildbench list`."""

    def smoke(self, variant: str, options: SmokeOptions) -> SmokeKind:
        """The smoke test of one cell of the image, with the run's options."""


@dataclass(frozen=True)
class Kind:
    """A kind as the registry lists it."""

    name: str  # as results, reports and compare name it
    # The keys of a config's `smoke` table it reads; none: it reads `smoke = "<text>"`.
    keys: tuple[str, ...]
    read: Callable[[Any, Where], SmokeConfig]  # its table (or text), at `smoke`
    tip: str  # how to write its table
    # The run's options, refused before any engine is asked (the model kind: --model).
    check_run: Callable[[SmokeOptions], None] = lambda options: None


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
