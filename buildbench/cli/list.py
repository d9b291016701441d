"""`buildbench list`: the resolved matrix (cells, Dockerfiles, build-args), without building."""

from __future__ import annotations

import hashlib
import io
import json
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from tabulate import tabulate

from buildbench.cli.options import (
    Matrix,
    format_option,
    matrix_options,
    model_options,
    model_requests,
    resolve_matrix,
)
from buildbench.labels import masked_build_args
from buildbench.measure.smoke.artifacts import check_model_stack
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.render import fmt
from buildbench.run.config import CONFIG_NAME
from buildbench.run.matrix import Cell
from buildbench.run.smokes import frameworks_of, idle_cells


def shown(path: Path) -> str:
    """A path relative to the current directory when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def smoke_text(cell: Cell) -> str:
    """The cell's smoke test, as its kind describes it."""
    return cell.smoke.describe() if cell.smoke else "-"


FORMATS = ("text", "markdown", "json", "csv")
JSON_FORMAT = "buildbench-list/1"
HEADERS = ["cell", "dockerfile", "sha256", "build-args", "smoke"]


def _rows(cells: list[Cell]) -> list[list[str]]:
    return [
        [
            cell.key,
            shown(cell.dockerfile),
            hashlib.sha256(cell.dockerfile_text().encode()).hexdigest()[:12],
            shlex.join(f"{k}={v}" for k, v in masked_build_args(cell.build_args).items()),
            smoke_text(cell),
        ]
        for cell in cells
    ]


def matrix_table(cells: list[Cell], tablefmt: str = "simple") -> str:
    return tabulate(_rows(cells), headers=HEADERS, tablefmt=tablefmt)


def _document(resolved: Matrix, origin: str, not_built: dict[str, str]) -> dict[str, Any]:
    """The matrix as a tool reads it: a row per cell (build-args masked), the cells left out
    with the reason, and pip's settings."""
    cells = [
        {
            "cell": cell.key,
            "dockerfile": row[1],
            "sha256": hashlib.sha256(cell.dockerfile_text().encode()).hexdigest(),
            "build_args": masked_build_args(cell.build_args),
            "smoke": row[4],
        }
        for cell, row in zip(resolved.cells, _rows(resolved.cells), strict=True)
    ]
    pip = resolved.pip.describe() if any(c.build_inputs for c in resolved.cells) else []
    document = {"format": JSON_FORMAT, "matrix": origin, "cells": cells, "pip": pip}
    return {**document, "not_built": not_built} if not_built else document


def _not_built(
    resolved: Matrix, models: tuple[str, ...], inputs: tuple[str, ...]
) -> dict[str, str]:
    """The cells no model of the run could use, as `run` decides it, with the reason: the
    models are loaded as `run` loads them (and cached for it); their reference outputs, which
    only a smoke test needs, are left to `run`. With no model given, none: the default model
    runs everywhere."""
    requests = model_requests(models, inputs, resolved.source)
    if not requests:
        return {}
    check_model_stack()
    options = SmokeOptions(models=requests, frameworks=frameworks_of(resolved.cells))
    return idle_cells(resolved.cells, options)


@click.command(name="list")
@matrix_options
@model_options
@format_option(
    "list",
    FORMATS,
    "markdown: the table for a job summary; json: one document (cells with their full sha256 "
    "and build-args, pip's settings); csv: a row per cell.",
)
def list_matrix(
    format_: str, models: tuple[str, ...], inputs: tuple[str, ...], **matrix: Any
) -> None:
    """Show the matrix `run` would build with the same options: each cell's Dockerfile and its
    sha256, build-args and smoke test, the cells no --model runs on (not built), and what pip
    in the builder stage gets.

    Builds nothing and needs no Docker engine.

    Example: buildbench list --config examples/course/buildbench.toml --cuda cpu
    """
    resolved = resolve_matrix(**matrix)
    not_built = {**resolved.not_built, **_not_built(resolved, models, inputs)}
    resolved = replace(resolved, cells=[c for c in resolved.cells if c.key not in not_built])
    source = resolved.source
    origin = shown(source) if source else f"built-in (no {CONFIG_NAME} here)"
    if format_ == "json":
        click.echo(json.dumps(_document(resolved, origin, not_built), indent=2))
        return
    if format_ == "csv":
        import pandas as pd  # a quarter of a second: only the CSV view pays it

        buffer = io.StringIO()
        pd.DataFrame(_rows(resolved.cells), columns=HEADERS).to_csv(buffer, index=False)
        click.echo(buffer.getvalue(), nl=False)
        return
    count = len(resolved.cells)
    click.echo(f"matrix: {origin}, {count} cell{'s' * (count != 1)}\n")
    click.echo(matrix_table(resolved.cells, "github" if format_ == "markdown" else "simple"))
    if not_built:
        click.echo("")
    for line in fmt.grouped(not_built):
        click.echo(f"not built: {line}")
    if any(cell.build_inputs for cell in resolved.cells):
        click.echo("\npip in the builder stage:")
        for line in resolved.pip.describe() or ["pip's defaults (PyPI)"]:
            click.echo(f"  {line}")
