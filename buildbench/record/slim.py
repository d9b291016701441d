"""What inference touched, and the slim image made of it (--slim; measured by measure/trace.py
and measure/slim.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from buildbench.record.smoke import SmokeResult


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
