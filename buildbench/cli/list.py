"""`buildbench list`: the resolved matrix (cells, Dockerfiles, build-args), without building."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

import click
from tabulate import tabulate

from buildbench.cli.options import config_option, cuda_option, only_option, option
from buildbench.config import CONFIG_NAME, load_matrix
from buildbench.matrix import DEFAULT_BASE_IMAGE, Cell, MatrixOptions, variants_for
from buildbench.pipeline import recorded_build_args


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
            shlex.join(f"{k}={v}" for k, v in recorded_build_args(cell.build_args).items()),
            smoke_text(cell),
        ]
        for cell in cells
    ]
    return tabulate(rows, headers=["cell", "dockerfile", "sha256", "build-args", "smoke"])


@click.command(name="list")
@config_option
@only_option
@cuda_option
@option(
    "--base-image",
    default=DEFAULT_BASE_IMAGE,
    show_default=True,
    help="BASE_IMAGE build-arg of the built-in images.",
)
def list_matrix(config: Path | None, only: tuple[str, ...], cuda: str, base_image: str) -> None:
    """Show the matrix: each cell's Dockerfile and its sha256, build-args and smoke test.

    Builds nothing and needs no Docker engine.

    Example: buildbench list --config examples/course/buildbench.toml --cuda cpu
    """
    options = MatrixOptions(variants=variants_for(cuda), base_image=base_image)
    source, cells = load_matrix(options, config=config, only=only)
    origin = shown(source) if source else f"built-in (no {CONFIG_NAME} here)"
    click.echo(f"matrix: {origin}, {len(cells)} cell{'s' * (len(cells) != 1)}\n")
    click.echo(matrix_table(cells))
