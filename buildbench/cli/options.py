"""Shared option helpers: every option is also settable as BUILDBENCH_<OPTION>."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from buildbench.config import CONFIG_NAME
from buildbench.docker_engine import DockerEngine
from buildbench.engine import Engine


def option(*names: str, **kwargs: Any) -> Callable:
    long = next(n for n in names if n.startswith("--")).split("/")[0]
    kwargs.setdefault("envvar", "BUILDBENCH_" + long[2:].upper().replace("-", "_"))
    kwargs.setdefault("show_envvar", True)
    return click.option(*names, **kwargs)


# The matrix options `run` and `list` share, spelled the same way.
config_option = option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Matrix config file [default: ./{CONFIG_NAME}, or [tool.buildbench] in "
    "./pyproject.toml; without either, the built-in images].",
)
only_option = option(
    "--only",
    multiple=True,
    metavar="NAME/VARIANT",
    help="Only this cell (repeatable; NAME alone: all its variants).",
)
cuda_option = option(
    "--cuda",
    type=click.Choice(["cpu", "cuda", "both"]),
    default="both",
    show_default=True,
    help="Which variants to build.",
)


def default_ca_bundle() -> Path | None:
    """The CA bundle pip would use here: PIP_CERT, REQUESTS_CA_BUNDLE or SSL_CERT_FILE."""
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if value := os.environ.get(name):
            return Path(value)
    return None


def connect() -> Engine:
    return DockerEngine()
