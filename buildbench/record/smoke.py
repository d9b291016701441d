"""The smoke test's result: what every kind reports (the header), and the kind's own detail.

Each kind's detail is a `SmokeDetail` in its own module (model.py, command.py, http.py), and
`convert.py` knows it by the kind's name (`DETAILS`): results.json holds it under `detail`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from buildbench.status import Status

D = TypeVar("D", bound="SmokeDetail")


@dataclass(frozen=True)
class SmokeDetail:
    """What one kind of smoke test found beyond the header (subclassed by each kind)."""

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
