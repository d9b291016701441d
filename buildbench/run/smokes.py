"""Which smoke test a cell gets: one kind per cell, chosen once, from what its config asks."""

from __future__ import annotations

from buildbench.measure.smoke.command import CommandSmoke
from buildbench.measure.smoke.inference import InferenceSmoke
from buildbench.measure.smoke.runner import SmokeKind, SmokeOptions
from buildbench.record import FRAMEWORKS
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
