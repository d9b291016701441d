"""Ctrl-C and SIGTERM mid-build: the build stops, the cell is recorded, nothing is left running."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import remove_run, run_options

pytestmark = pytest.mark.integration


def _containers(client: docker.DockerClient) -> set[str]:
    return {c.id for c in client.containers.list(all=True)}


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_build_is_recorded_and_cleaned_up(
    sig, code, base_image: str, client: docker.DockerClient, tmp_path: Path
):
    before = _containers(client)
    command = [
        sys.executable,
        "-m",
        "buildbench",
        "run",
        "--framework",
        "onnx",
        "--cuda",
        "cpu",
        "--no-smoke",
        "--results-dir",
        str(tmp_path),
        *run_options(base_image),
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:  # wait until pip runs inside the build
        if "Step 8/" in line:
            break
    time.sleep(3)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr[-2000:]
    run_dir = next(tmp_path.iterdir())
    data = json.loads((run_dir / "results.json").read_text())
    assert [r["status"] for r in data["results"]] == ["interrupted"]
    assert data["run"]["finished_at"]
    assert (run_dir / "report.md").is_file()
    assert re.search(r"^onnx\s+cpu\s+interrupted", stdout, re.MULTILINE)  # summary printed
    for _ in range(30):  # the engine removes the build's container once it sees the disconnect
        if _containers(client) <= before:
            break
        time.sleep(1)
    assert _containers(client) <= before, "the interrupted build left a container behind"
    remove_run(client, data["run"]["run_id"])
