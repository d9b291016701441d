"""Shared option helpers: every option is also settable as BUILDBENCH_<OPTION>."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from buildbench.docker_engine import DockerEngine
from buildbench.engine import Engine


def option(*names: str, **kwargs: Any) -> Callable:
    long = next(n for n in names if n.startswith("--")).split("/")[0]
    kwargs.setdefault("envvar", "BUILDBENCH_" + long[2:].upper().replace("-", "_"))
    kwargs.setdefault("show_envvar", True)
    return click.option(*names, **kwargs)


def default_ca_bundle() -> Path | None:
    """The CA bundle pip would use here: PIP_CERT, REQUESTS_CA_BUNDLE or SSL_CERT_FILE."""
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if value := os.environ.get(name):
            return Path(value)
    return None


def connect() -> Engine:
    return DockerEngine()
