"""What a run tells whoever watches it (the terminal's live view in cli/progress.py, or nobody)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from buildbench.record import CellRecord, EngineFacts
from buildbench.run.matrix import Cell


@dataclass(frozen=True)
class RunHeader:
    """What a run says when it starts: where its results go and what it was given."""

    run_id: str
    run_dir: Path
    engine: EngineFacts
    builder: str
    base_image: str
    pip: tuple[str, ...]
    not_built: Mapping[str, str] = field(default_factory=dict)  # cell key -> why not


class Progress(Protocol):
    """What a run tells whoever watches it. Each method does nothing unless a watcher says
    otherwise."""

    def run_started(self, header: RunHeader) -> None:
        return None

    def cell_started(self, cell: Cell, index: int, total: int) -> None:
        return None

    def phase(
        self,
        cell: Cell,
        text: str,
        done: int | None = None,
        total: int | None = None,
        estimate: float | None = None,  # seconds the same phase took in the previous run
    ) -> None:
        return None

    def build_log(self, cell: Cell, line: str) -> None:
        return None

    def cell_finished(self, record: CellRecord) -> None:
        return None


class Silent(Progress):
    """Progress that shows nothing."""
