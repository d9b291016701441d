"""Which smoke test a cell gets: one kind per cell, chosen once, from what its config asks; and
which cells no model of the run can use, so that their images are not built for nothing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from buildbench.errors import UsageError
from buildbench.measure.smoke.command import CommandSmoke
from buildbench.measure.smoke.inference import InferenceSmoke, check_models
from buildbench.measure.smoke.runner import SmokeKind, SmokeOptions
from buildbench.record import FRAMEWORKS
from buildbench.render import fmt
from buildbench.run.matrix import Cell


def smoke_kind(cell: Cell, options: SmokeOptions) -> SmokeKind | None:
    """The config's own command or HTTP service, else the model in the cell's framework, else
    none."""
    if cell.smoke_http:
        return cell.smoke_http
    if cell.smoke_command:
        return CommandSmoke(cell.smoke_command, cell.smoke_expect)
    if cell.framework in FRAMEWORKS:
        return InferenceSmoke(
            cell.framework or "",
            cell.variant,
            options.batch_sizes,
            models=options.models,
            settings=options.ort_settings,
            threads=options.threads,
            frameworks=options.frameworks,
        )
    return None


def idle_reason(kind: SmokeKind | None) -> str | None:
    """Why a cell's image would be built for nothing: its smoke test is the user's models, and
    its framework has a form of none of them. None where it runs one, where its smoke test is
    no model's, and for the default model (it runs in both). Reads the prepared models: call it
    once their checks passed."""
    if not isinstance(kind, InferenceSmoke) or not kind.models:
        return None
    models = [m.info for m in kind.prepared()]
    if any(kind.framework not in m.not_applicable for m in models):
        return None
    reasons = {m.source: m.not_applicable[kind.framework] for m in models}
    return f"no model runs on {kind.framework} ({'; '.join(fmt.grouped(reasons))})"


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
    check_models(options)
    return options
