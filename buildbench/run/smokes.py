"""Which smoke test a cell gets: the one its config's kind makes for it, with the run's
options; and which cells no model of the run can use, so that their images are not built for
nothing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from buildbench.errors import UsageError
from buildbench.measure.servers.smoke import ServeConfig
from buildbench.measure.smoke.kinds import check_run
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.measure.smoke.runner import SmokeKind
from buildbench.render import fmt
from buildbench.run.matrix import Cell


def smoke_kind(cell: Cell, options: SmokeOptions) -> SmokeKind | None:
    """The cell's smoke test, made by its kind; None: the cell has none."""
    return cell.smoke.smoke(cell.variant, options) if cell.smoke else None


def idle_reason(kind: SmokeKind | None) -> str | None:
    """Why a cell's image would be built for nothing, as its kind says (the model kind: the
    user's models, none of which has a form for its framework). Reads the prepared models:
    call it once their checks passed."""
    idle = kind.idle() if kind else None
    return None if idle is None else f"{idle.what} ({'; '.join(fmt.grouped(idle.reasons))})"


def idle_cells(cells: Sequence[Cell], options: SmokeOptions) -> dict[str, str]:
    """The cells not to build, by key, each with its reason (see `idle_reason`); a UsageError
    when that leaves none."""
    found = {cell.key: idle_reason(smoke_kind(cell, options)) for cell in cells}
    idle = {key: reason for key, reason in found.items() if reason is not None}
    if cells and len(idle) == len(cells):
        raise UsageError(
            f"no cell runs the models: {'; '.join(dict.fromkeys(idle.values()))}",
            tip="give the models in a form the selected frameworks run, or drop --framework",
        )
    return idle


def frameworks_of(cells: Iterable[Cell]) -> tuple[str, ...]:
    """The frameworks the cells' model smoke tests use: a model none of them runs is refused."""
    return tuple(dict.fromkeys(cell.framework for cell in cells if cell.framework))


def run_smoke_options(options: SmokeOptions, cells: Iterable[Cell]) -> SmokeOptions:
    """The run's smoke options, with the frameworks its cells use; a user's model is refused
    here, before any engine is asked."""
    options = replace(options, frameworks=frameworks_of(cells))
    check_run(options)
    for cell in cells:  # a server named by --server must serve the model
        if isinstance(cell.smoke, ServeConfig):
            cell.smoke.smoke(cell.variant, options).check()
    return options
