"""`buildbench list`: the resolved matrix (cells, Dockerfiles, build-args), without building."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Any

import click
from tabulate import tabulate

from buildbench.cli.options import matrix_options, resolve_matrix
from buildbench.labels import masked_build_args
from buildbench.run.config import CONFIG_NAME
from buildbench.run.matrix import Cell


def shown(path: Path) -> str:
    """A path relative to the current directory when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def smoke_text(cell: Cell) -> str:
    if cell.smoke_command:
        expect = f', expects "{cell.smoke_expect}"' if cell.smoke_expect is not None else ""
        return f"$ {shlex.join(cell.smoke_command)}{expect}"
    return cell.framework or "-"


def matrix_table(cells: list[Cell]) -> str:
    rows = [
        [
            cell.key,
            shown(cell.dockerfile),
            hashlib.sha256(cell.dockerfile_text().encode()).hexdigest()[:12],
            shlex.join(f"{k}={v}" for k, v in masked_build_args(cell.build_args).items()),
            smoke_text(cell),
        ]
        for cell in cells
    ]
    return tabulate(rows, headers=["cell", "dockerfile", "sha256", "build-args", "smoke"])


@click.command(name="list")
@matrix_options
def list_matrix(**matrix: Any) -> None:
    """Show the matrix `run` would build with the same options: each cell's Dockerfile and its
    sha256, build-args and smoke test, and what pip in the builder stage gets.

    Builds nothing and needs no Docker engine.

    Example: buildbench list --config examples/course/buildbench.toml --cuda cpu
    """
    resolved = resolve_matrix(**matrix)
    source = resolved.source
    origin = shown(source) if source else f"built-in (no {CONFIG_NAME} here)"
    count = len(resolved.cells)
    click.echo(f"matrix: {origin}, {count} cell{'s' * (count != 1)}\n")
    click.echo(matrix_table(resolved.cells))
    if any(cell.build_inputs for cell in resolved.cells):
        click.echo("\npip in the builder stage:")
        for line in resolved.pip.describe() or ["pip's defaults (PyPI)"]:
            click.echo(f"  {line}")
