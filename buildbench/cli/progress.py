"""What `buildbench run` shows while it works: a live status line per phase on a terminal
(rich), plain lines where stderr is a log (CI), nothing but the summary with -q."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from buildbench.record import CellRecord
from buildbench.render import fmt
from buildbench.run.matrix import Cell
from buildbench.run.progress import RunHeader
from buildbench.status import Status

# A new instruction: classic "Step 3/9 : RUN ...", BuildKit "#7 [builder 3/5] RUN ...".
STEP_START = re.compile(r"^(Step \d+/\d+ :|#\d+ \[[^\]]*\d+/\d+\])")
_WIDTH = 110


def failure_lines(record: CellRecord) -> list[str]:
    """Why a cell failed, as the terminal says it: the reason, then the log's last lines."""
    if record.status == Status.OK:
        return []
    lines = [
        f"    {record.status.value}: {fmt.one_line(record.error or 'no reason given', _WIDTH)}"
    ]
    if record.status == Status.BUILD_FAILED:
        lines += [f"    | {fmt.one_line(line, _WIDTH)}" for line in record.log_tail[-6:]]
    elif record.smoke and record.smoke.output_tail:
        lines += [f"    | {fmt.one_line(line, _WIDTH)}" for line in record.smoke.output_tail[-4:]]
    return lines


def finished_line(record: CellRecord) -> str:
    # The statistics (numpy) are loaded by the run's first save: not at start-up.
    from buildbench.analyze.derived import build_summary

    image = record.image
    return (
        f"{record.key}: {record.status.value}, {fmt.seconds(build_summary(record).median)}, "
        f"{fmt.size(image.size_bytes if image else None)}"
    )


@dataclass
class _Phase:
    cell: str
    text: str
    since: float = field(default_factory=time.monotonic)
    done: int | None = None
    total: int | None = None
    estimate: float | None = None  # seconds the same phase took in the previous run


class TerminalProgress:
    """Live status on a terminal, plain lines otherwise. `view(label)` gives the `Progress` of
    one engine's run; with several engines at once, each line starts with its engine's label."""

    def __init__(
        self,
        console: Console,
        *,
        verbose: bool = False,
        quiet: bool = False,
    ) -> None:
        self.console = console
        self.verbose, self.quiet = verbose, quiet
        self.live_view = console.is_terminal and not quiet
        self.phases: dict[str, _Phase] = {}
        self._lock = threading.Lock()
        self._live: Live | None = None

    def view(self, label: str = "") -> EngineView:
        return EngineView(self, f"{label} " if label else "")

    def __enter__(self) -> TerminalProgress:
        if self.live_view:
            self._live = Live(
                get_renderable=self._render,
                console=self.console,
                refresh_per_second=4,
                transient=True,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def print(self, text: str, style: str = "") -> None:
        if not self.quiet:
            self.console.print(Text(text, style=style), highlight=False, soft_wrap=True)

    def set_phase(self, key: str, phase: _Phase | None) -> None:
        with self._lock:
            if phase is None:
                self.phases.pop(key, None)
            else:
                self.phases[key] = phase

    def update(
        self, key: str, text: str, done: int | None, total: int | None, estimate: float | None
    ) -> bool:
        """Move `key` to the phase `text`; False when it was in that phase already."""
        with self._lock:
            current = self.phases.get(key)
            if current is not None and current.text == text:
                current.done, current.total = done, total
                return False
            self.phases[key] = _Phase(key, text, done=done, total=total, estimate=estimate)
            return True

    def step(self, key: str, line: str) -> None:
        with self._lock:
            phase = self.phases.get(key)
            if phase is not None:
                phase.text = f"building: {fmt.one_line(line, 80)}"

    def _render(self) -> Group:
        with self._lock:
            phases = list(self.phases.values())
        table = Table.grid(padding=(0, 1))
        for phase in phases:
            clock = f"{time.monotonic() - phase.since:5.0f} s"
            if phase.estimate:
                clock += f" (last run {phase.estimate:.0f} s)"
            row: list[Any] = [Text(phase.cell, style="bold"), Text(phase.text)]
            if phase.total:
                done = phase.done or 0
                row.append(ProgressBar(total=phase.total, completed=done, width=24))
                row.append(Text(f"{fmt.size(done)} / {fmt.size(phase.total)}"))
            row.append(Text(clock, style="dim"))
            table.add_row(*row)
        return Group(table)


class EngineView:
    """The `Progress` of one engine's run, drawn by the shared `TerminalProgress`."""

    def __init__(self, screen: TerminalProgress, prefix: str) -> None:
        self.screen, self.prefix = screen, prefix

    def run_started(self, header: RunHeader) -> None:
        engine = header.engine
        where = "local" if engine.local else "remote"
        self.screen.print(f"{self.prefix}run {header.run_id}: results in {header.run_dir}", "bold")
        lines = [
            f"engine: {engine.endpoint} ({engine.name}, Docker {engine.server_version}, {where})",
            f"builder: {header.builder}; base: {header.base_image}",
            *(f"pip: {line}" for line in header.pip),
            *(f"not built: {line}" for line in fmt.grouped(header.not_built)),
        ]
        for line in lines:
            self.screen.print(f"{self.prefix}  {line}")

    def cell_started(self, cell: Cell, index: int, total: int) -> None:
        self.screen.print(f"{self.prefix}[{index}/{total}] {cell.key}", "bold")
        self.screen.set_phase(self.prefix + cell.key, _Phase(self.prefix + cell.key, "starting"))

    def phase(
        self,
        cell: Cell,
        text: str,
        done: int | None = None,
        total: int | None = None,
        estimate: float | None = None,
    ) -> None:
        changed = self.screen.update(self.prefix + cell.key, text, done, total, estimate)
        if changed and not self.screen.live_view:
            self.screen.print(f"{self.prefix}  {cell.key} | {text}")

    def build_log(self, cell: Cell, line: str) -> None:
        if self.screen.verbose:
            self.screen.print(f"{self.prefix}  {line}")
        elif STEP_START.match(line):
            if self.screen.live_view:
                self.screen.step(self.prefix + cell.key, line)
            else:
                self.screen.print(f"{self.prefix}  {cell.key} | {fmt.one_line(line, _WIDTH)}")

    def cell_finished(self, record: CellRecord) -> None:
        self.screen.set_phase(self.prefix + record.key, None)
        style = "green" if record.status == Status.OK else "red"
        self.screen.print(f"{self.prefix}  {finished_line(record)}", style)
        for line in failure_lines(record):
            self.screen.print(f"{self.prefix}{line}")
