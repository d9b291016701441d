"""The smoke test's result: what every kind reports (the header), and the kind's own detail.

Each kind's detail is a `SmokeDetail` in its own module (model.py, command.py, http.py), and
`convert.py` knows it by the kind's name (`DETAILS`): results.json holds it under `detail`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal, TypeVar

from buildbench.status import Status

D = TypeVar("D", bound="SmokeDetail")


@dataclass(frozen=True)
class SmokeMetric:
    """A figure a kind adds to `compare` and `history`: a time, judged as the smoke test's,
    read from a result as raw samples, or as their p95 (one figure per run)."""

    name: str  # as people read it
    key: str  # as CSV/JSON columns name it
    unit: Literal["seconds", "ms"]  # how it reads: seconds, or seconds shown in ms
    samples: Callable[[SmokeResult], list[float]]
    reduce: Literal["samples", "p95"] = "samples"


@dataclass(frozen=True)
class SmokeDetail:
    """What one kind of smoke test found beyond the header (subclassed by each kind), and the
    metrics the kind adds to compare and history (`analyze.metrics` asks every kind's)."""

    metrics: ClassVar[tuple[SmokeMetric, ...]] = ()

    def identity(self) -> tuple[str, ...]:
        """What the test ran: results that differ here are not comparable (`compare`)."""
        return ()


@dataclass(frozen=True)
class SmokeResult:
    """The verdict of a cell's smoke test, what every kind reports, and the kind's detail."""

    status: Status
    message: str
    kind: str  # the kind's name: model, command, http (measure/smoke/kinds)
    seconds: float = 0.0
    output_tail: list[str] = field(default_factory=list)
    python_version: str | None = None
    peak_memory_bytes: int | None = None
    # One fresh container each: seconds from the start request to the first good output
    # (a model's first inference, a service's first good answer).
    cold_start_seconds: list[float] = field(default_factory=list)
    detail: SmokeDetail | None = None

    def of(self, kind: type[D]) -> D | None:
        """The detail, if it is of that kind."""
        return self.detail if isinstance(self.detail, kind) else None


# From the start request to the first good output, one fresh container each: every kind that
# has a first output lists it.
COLD_START = SmokeMetric(
    "cold start", "cold_start_seconds", "seconds", lambda result: list(result.cold_start_seconds)
)
