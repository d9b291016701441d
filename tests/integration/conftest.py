"""Fixtures that build real images on the real engine, and remove them afterwards.

This machine has no registry, a TLS proxy and no PyTorch CPU index: the base image comes from
`buildbench base`, and a local CPU torch wheel (pip's find-links) replaces the CPU index.
Override with BUILDBENCH_TEST_BASE_IMAGE / BUILDBENCH_TEST_FIND_LINKS.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from buildbench.base import DEFAULT_TAG, make_base_image
from buildbench.cleanup import clean
from buildbench.docker_engine import DockerEngine

BASE_IMAGE = os.environ.get("BUILDBENCH_TEST_BASE_IMAGE", DEFAULT_TAG)


@pytest.fixture(scope="session")
def engine() -> DockerEngine:
    return DockerEngine()


@pytest.fixture(scope="session")
def client(engine: DockerEngine) -> Iterator[docker.DockerClient]:
    yield engine.client
    engine.client.close()


@pytest.fixture(scope="session")
def base_image(engine: DockerEngine) -> str:
    if engine.image(BASE_IMAGE) is None:
        make_base_image(engine, tag=BASE_IMAGE)
    return BASE_IMAGE


def _find_links() -> Path | None:
    for candidate in (
        os.environ.get("BUILDBENCH_TEST_FIND_LINKS"),
        os.environ.get("PIP_FIND_LINKS"),
        "/opt/wheels",
    ):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def run_options(base: str) -> list[str]:
    """`buildbench run` options for this machine: a local CPU torch wheel replaces the index."""
    options = ["--base-image", base]
    links = _find_links()
    cpu_wheel = next(iter(sorted(links.glob("torch-*+cpu-*.whl"))), None) if links else None
    if links and cpu_wheel:
        version = re.match(r"torch-([^+-]+)\+cpu", cpu_wheel.name).group(1)  # type: ignore[union-attr]
        options += [
            "--pip-find-links",
            str(links),
            "--torch-cpu-index-url",
            "",
            "--torch-version",
            version,
        ]
    return options


def remove_run(client: docker.DockerClient, run_id: str) -> None:
    """Remove what one run made, with `buildbench clean`'s own code: nothing may be left."""
    result = clean(DockerEngine(client), run_id=run_id)
    assert result.kept == [], result.kept


@pytest.fixture(scope="session")
def matrix_run(base_image: str, client: docker.DockerClient, tmp_path_factory) -> Iterator[dict]:
    """The whole `--cuda both` matrix, once, through the real command line."""
    results_dir = tmp_path_factory.mktemp("results")
    command = [
        sys.executable,
        "-m",
        "buildbench",
        "run",
        "--cuda",
        "both",
        "--results-dir",
        str(results_dir),
        *run_options(base_image),
    ]
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    files = list(results_dir.glob("*/results.json"))
    assert files, f"no results written:\n{process.stdout}\n{process.stderr[-3000:]}"
    data = json.loads(files[0].read_text())
    yield {
        "process": process,
        "data": data,
        "run_dir": files[0].parent,
        "cells": {f"{r['name']}/{r['variant']}": r for r in data["results"]},
    }
    remove_run(client, data["run"]["run_id"])
