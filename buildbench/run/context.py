"""Assemble the build context sent to the engine, with buildbench's build-time inputs.

The built-in Dockerfiles copy `build-inputs/` into their builder stage only. It holds a pip.conf
(index URLs, CA bundle, find-links) and, when given, the CA bundle and a directory of wheels:
all build-time only, none of it reaches a final image.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import docker.utils.build

from buildbench.errors import UsageError
from buildbench.measure.runtimes import NAMES, runtime
from buildbench.run.matrix import Cell
from buildbench.run.pipconfig import PipInputs

# A local CPU wheel (`torch-2.13.0+cpu-...whl`) outranks the same release from PyPI in pip's eyes,
# so a CUDA cell never sees it: otherwise its "CUDA" image would silently be a CPU image.
_CPU_LOCAL_WHEEL = re.compile(r"^[^-]+-[^-]+\+cpu[^-]*-", re.IGNORECASE)


def wheels_for(cell: Cell, wheels: Sequence[Path]) -> list[Path]:
    """The wheels that go into this cell's context."""
    wheels = [p for p in wheels if p.is_file()]
    if cell.variant == "cuda":
        wheels = [w for w in wheels if not _CPU_LOCAL_WHEEL.match(w.name)]
    if cell.framework in NAMES:  # what the runtime's image installs
        wheels = runtime(cell.framework).wheels(wheels)
    return wheels


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class CellContext:
    """A cell's build context (engine/builders.py's `BuildContext`): packed anew, .dockerignore
    read and the tree walked, every time a build sends it, as `docker build` does."""

    cell: Cell
    pip: PipInputs
    prefetched: tuple[Path, ...] = ()
    # The Dockerfile may live outside its context (as `docker build -f` allows): it goes in
    # under this name.
    dockerfile: str = ".buildbench.dockerfile"

    @property
    def dockerfile_text(self) -> str:
        return self.cell.dockerfile_text()

    def pack(self, out: BinaryIO) -> None:
        """The context's tar (plus build-inputs/ for built-in cells), written front to back.
        A file that cannot be read is a UsageError naming it."""
        cell, pip = self.cell, self.pip
        try:
            # GNU format: no PAX header in front, which the 20.10 CLI would not take as a tar
            # on stdin. A stream ("w|"): the tar never seeks, so it can go straight to a pipe.
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
                tar.add(cell.context, arcname=".", filter=_context_filter(cell))
                _add_bytes(tar, self.dockerfile, self.dockerfile_text.encode())
                if cell.build_inputs:
                    wheels = wheels_for(cell, [*pip.wheels(), *self.prefetched])
                    conf = pip.pip_conf(bool(wheels), no_index=bool(self.prefetched))
                    _add_bytes(tar, "build-inputs/pip.conf", conf.encode())
                    # resolve(): a symlinked bundle or wheel must travel as the file, not the link.
                    if pip.ca_bundle:
                        tar.add(pip.ca_bundle.resolve(), arcname="build-inputs/ca.pem")
                    for wheel in {w.name: w for w in wheels}.values():
                        tar.add(wheel.resolve(), arcname=f"build-inputs/wheels/{wheel.name}")
        except BrokenPipeError:  # the reader went away: not the context's fault
            raise
        except OSError as exc:
            raise UsageError(
                f"cannot pack the build context {cell.context}: {exc}",
                tip="make its files readable, or leave them out with a .dockerignore",
            ) from None


def build_context(cell: Cell, pip: PipInputs, prefetched: Sequence[Path] = ()) -> CellContext:
    """The cell's context, checked: packed later, by each build that sends it.
    `prefetched`: this cell's wheels from --prefetch."""
    if not cell.context.is_dir():
        raise UsageError(
            f"build context {cell.context} is not a directory", tip="check the matrix config"
        )
    cell.dockerfile_text()  # a missing Dockerfile is the user's mistake, said before timing
    return CellContext(cell, pip, tuple(prefetched))


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
