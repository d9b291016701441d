"""`buildbench diff`: what differs between two images, or between two runs' cells."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from buildbench.analyze.sizediff import diff_inventories, diff_results
from buildbench.cli.options import engine_options, format_option, one_engine, option
from buildbench.errors import UsageError
from buildbench.render import fmt
from buildbench.render.diff import FORMATS, Diff, render_diffs
from buildbench.results import load_results

EXIT_GREW = 1
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


class ByteSize(click.ParamType):
    """A byte count: 5000000, 5MB, 4.5MiB."""

    name = "bytes"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower().replace(" ", "")
        number = text.rstrip("kmgib")
        unit = text[len(number) :]
        try:
            if unit not in _UNITS:
                raise ValueError(unit)
            return int(float(number) * _UNITS[unit])
        except ValueError:
            self.fail(f"{value!r} is not a byte count (e.g. 5000000, 5MB, 4.5MiB)", param, ctx)


def _is_results(argument: str) -> bool:
    return Path(argument).exists()


def _image_diffs(
    before: str, after: str, engines: tuple[str, ...], contexts: tuple[str, ...]
) -> list[Diff]:
    from buildbench.measure.inventory import find_image, read_inventory  # the engine's side only

    engine = one_engine(engines, contexts)
    try:
        infos = [find_image(engine, ref) for ref in (before, after)]  # both, before any read
        inventories = []
        for ref, info in zip((before, after), infos, strict=True):
            started = time.monotonic()
            click.echo(f"reading {ref} ({fmt.size(info.size_bytes)})...", err=True)
            inventories.append(read_inventory(engine, ref, info))
            click.echo(f"read {ref} in {fmt.seconds(time.monotonic() - started)}", err=True)
    finally:
        engine.close()
    return [Diff(f"{before} -> {after}", diff_inventories(*inventories))]


@click.command(name="diff")
@click.argument("before")
@click.argument("after")
@format_option(
    "diff",
    FORMATS,
    "markdown: fit for a CI job summary; json: one document (each diff's parts, and every "
    "distribution, package, layer and finding that changed, the largest files); csv: the rows.",
)
@option(
    "--fail-over",
    type=ByteSize(),
    metavar="BYTES",
    help="Exit 1 when AFTER is larger than BEFORE by more than this (5000000, 5MB, 4.5MiB); "
    "with results files, any cell.",
)
@option(
    "--cell",
    "cells",
    multiple=True,
    metavar="NAME/VARIANT",
    help="With results files: only this cell (repeatable) [default: every cell both measured].",
)
@option(
    "--top",
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    help="The largest changes shown of each kind; the rest are summed in one line.",
)
@engine_options
def diff_command(
    before: str,
    after: str,
    format_: str,
    fail_over: int | None,
    cells: tuple[str, ...],
    top: int,
    engines: tuple[str, ...],
    contexts: tuple[str, ...],
) -> None:
    """What differs between BEFORE and AFTER: two images on the engine (local or remote; read
    through the engine, never from this machine's disk), or two results files (or run folders),
    cell by cell. Sizes by Python distribution, Debian package, layer (matched by instruction)
    and file, with versions old -> new and bytes, largest first, adding up to the change.

    Exit status: 0; 1 with --fail-over when AFTER grew by more than that; 2 for bad input.

    Example: buildbench diff onnx:cpu-old onnx:cpu --fail-over 10MB
    """
    kinds = {_is_results(before), _is_results(after)}
    if kinds == {True, False}:
        raise UsageError(
            "give two images or two results files, not one of each",
            tip="an argument that is a path on this machine is read as results",
        )
    if kinds == {True}:
        old, new = load_results(Path(before)), load_results(Path(after))
        diffs = [Diff(cell, found) for cell, found in diff_results(old, new, cells)]
    else:
        if cells:
            raise UsageError("--cell is for results files", tip="leave it out for two images")
        diffs = _image_diffs(before, after, engines, contexts)
    click.echo(render_diffs(diffs, format_, top), nl=False)
    if fail_over is not None and any(d.sizes.delta > fail_over for d in diffs):
        sys.exit(EXIT_GREW)
