"""`buildbench base`: python, pip and venv usable as in the official python:3.11-slim image."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.integration.conftest import buildbench

pytestmark = pytest.mark.integration


def test_base_image_has_python_pip_and_venv(client: docker.DockerClient, base_image: str):
    script = (
        "python --version && pip --version && python3 -m venv /tmp/v && /tmp/v/bin/pip --version"
        " && pip install --dry-run --no-index six 2>&1 | grep -vc externally-managed"
    )
    out = client.containers.run(
        base_image, ["sh", "-c", script], network_mode="none", remove=True, read_only=False
    ).decode()
    assert "Python 3.11" in out
    assert out.count("pip ") >= 2
    assert "externally" not in out


def test_base_refuses_to_take_the_name_of_an_existing_image(base_image: str, tmp_path: Path):
    ran = buildbench("base", "--tag", base_image, cwd=tmp_path)
    assert ran.process.returncode == 2
    assert ran.process.stderr.startswith(f"ERROR: image {base_image} exists; pass --force")
    assert "TIP: " in ran.process.stderr
