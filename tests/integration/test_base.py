"""`buildbench base`: python, pip and venv usable as in the official python:3.11-slim image."""

import pytest

pytestmark = pytest.mark.integration


def test_base_image_has_python_pip_and_venv(client, base_image):
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
