"""Assemble the build context sent to the engine, with buildbench's build-time inputs.

The built-in Dockerfiles copy `build-inputs/` into their builder stage only. It holds a pip.conf
(index URLs, CA bundle, find-links) and, when given, the CA bundle and a directory of wheels:
all build-time only, none of it reaches a final image.
"""

from __future__ import annotations

import configparser
import io
import re
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import docker.utils.build

from buildbench.errors import UsageError
from buildbench.matrix import Cell

# A local CPU wheel (`torch-2.13.0+cpu-...whl`) outranks the same release from PyPI in pip's eyes,
# so a CUDA cell never sees it: otherwise its "CUDA" image would silently be a CPU image.
_CPU_LOCAL_WHEEL = re.compile(r"^[^-]+-[^-]+\+cpu[^-]*-", re.IGNORECASE)
_TORCH_WHEEL = re.compile(r"^torch(vision|audio)?-", re.IGNORECASE)


@dataclass(frozen=True)
class PipInputs:
    ca_bundle: Path | None = None
    index_url: str = ""
    extra_index_url: str = ""
    find_links: Path | None = None

    def validate(self) -> None:
        if self.ca_bundle is not None and not self.ca_bundle.is_file():
            raise UsageError(
                f"CA bundle {self.ca_bundle} is not a file",
                tip="give --ca-bundle an existing PEM file, or unset PIP_CERT",
            )
        if self.find_links is not None and not self.find_links.is_dir():
            raise UsageError(
                f"--pip-find-links {self.find_links} is not a directory",
                tip="give a directory of wheels (see `pip config list` for find-links)",
            )

    def pip_conf(self) -> str:
        conf = configparser.ConfigParser()
        section: dict[str, str] = {}
        if self.ca_bundle:
            section["cert"] = "/build-inputs/ca.pem"
        if self.find_links:
            section["find-links"] = "/build-inputs/wheels"
        if self.index_url:
            section["index-url"] = self.index_url
        if self.extra_index_url:
            section["extra-index-url"] = self.extra_index_url
        conf["global"] = section
        out = io.StringIO()
        conf.write(out)
        return "# written by buildbench for this build only\n" + out.getvalue()


def wheels_for(cell: Cell, find_links: Path) -> list[Path]:
    """The wheels of `find_links` that go into this cell's context."""
    wheels = sorted(p for p in find_links.iterdir() if p.suffix == ".whl" and p.is_file())
    if cell.variant == "cuda":
        wheels = [w for w in wheels if not _CPU_LOCAL_WHEEL.match(w.name)]
    if cell.framework == "onnx":
        # The ONNX Runtime image never installs torch: uploading and copying a 190 MB torch
        # wheel would only add seconds to its timed build.
        wheels = [w for w in wheels if not _TORCH_WHEEL.match(w.name)]
    return wheels


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def build_context(cell: Cell, pip: PipInputs) -> tuple[BinaryIO, str]:
    """A tar of the cell's context (plus build-inputs/ for built-in cells), rewound to 0,
    and the Dockerfile's path inside it."""
    if not cell.context.is_dir():
        raise UsageError(
            f"build context {cell.context} is not a directory", tip="check the matrix config"
        )
    text = cell.dockerfile_text().encode()
    out = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    # GNU format: no PAX header in front, which the 20.10 CLI would not take as a tar on stdin.
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(cell.context, arcname=".", filter=_context_filter(cell))
        # The Dockerfile may live outside its context (as `docker build -f` allows).
        dockerfile = ".buildbench.dockerfile"
        _add_bytes(tar, dockerfile, text)
        if cell.build_inputs:
            _add_bytes(tar, "build-inputs/pip.conf", pip.pip_conf().encode())
            # resolve(): a symlinked bundle or wheel must travel as the file, not the link.
            if pip.ca_bundle:
                tar.add(pip.ca_bundle.resolve(), arcname="build-inputs/ca.pem")
            if pip.find_links:
                for wheel in wheels_for(cell, pip.find_links):
                    tar.add(wheel.resolve(), arcname=f"build-inputs/wheels/{wheel.name}")
    out.seek(0)
    return out, dockerfile


def _context_filter(cell: Cell) -> Callable[[tarfile.TarInfo], tarfile.TarInfo | None]:
    """Leave out what the context's .dockerignore excludes (as `docker build` does) and, for
    built-in cells, the checked-in pip.conf that buildbench replaces."""
    ignore = cell.context / ".dockerignore"
    patterns = ignore.read_text().splitlines() if ignore.is_file() else []
    kept = docker.utils.build.exclude_paths(str(cell.context), patterns) if patterns else None

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = info.name.removeprefix("./")
        if cell.build_inputs and name == "build-inputs/pip.conf":
            return None
        if kept is not None and name not in (".", "") and name not in kept:
            return None
        return info

    return keep
