"""`--prefetch`: download, before timing, the wheels the built-in images install, so that the
timed builds measure image assembly and not the index's bandwidth.

The wheels are fetched on this machine with `pip download` for the base image's Python and the
engine's platform (read inside a container), kept in a cache folder between runs, and travel
in the build context's builder-only `build-inputs/wheels`; the builder stage's pip then gets
`no-index`. What was downloaded (bytes, seconds) is recorded beside the build, not in it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from buildbench.errors import PreflightFailed, UsageError
from buildbench.record import Download
from buildbench.run.context import wheels_for
from buildbench.run.matrix import Cell
from buildbench.run.pipconfig import PipInputs
from buildbench.run.preflight import EngineProbe

# pip download's report of each file: newly saved, or found in --dest from an earlier run.
_SAVED = re.compile(r"^\s*(?:Saved|File was already downloaded) (?P<path>\S+\.whl)\s*$")
_OLDEST_MANYLINUX = 17  # manylinux_2_17 == manylinux2014


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "buildbench" / "wheels"


def platforms(probe: EngineProbe) -> list[str]:
    """The wheel platform tags the base image accepts: manylinux up to its glibc, newest first."""
    found = re.search(r"(\d+)\.(\d+)", probe.libc)
    if not found or found.group(1) != "2":
        return [f"linux_{probe.machine}"]
    newest = int(found.group(2))
    tags = [f"manylinux_2_{minor}_{probe.machine}" for minor in range(newest, 15, -1)]
    return [*tags, f"manylinux2014_{probe.machine}", f"linux_{probe.machine}"]


def download_command(
    cell: Cell, pip: PipInputs, probe: EngineProbe, dest: Path, links: Path
) -> list[str]:
    python = ".".join(probe.python.split(".")[:2])
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest)]
    command += ["--python-version", python, "--implementation", "cp"]
    for tag in platforms(probe):
        command += ["--platform", tag]
    index = cell.requirements_index or pip.index_url
    if index:
        command += ["--index-url", index]
    for url in pip.extra_index_urls:
        command += ["--extra-index-url", url]
    command += ["--find-links", str(links)]
    for url in pip.find_links_urls:
        command += ["--find-links", url]
    if pip.ca_bundle:
        command += ["--cert", str(pip.ca_bundle)]
    return [*command, *cell.requirements]


def _isolated_env() -> dict[str, str]:
    """pip on this machine with only what buildbench passes: no config files, no PIP_* (its own
    caps and local indexes are this machine's, not the image's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One pip at a time per cache folder: runs on several engines prefetch at once."""
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prefetch_cell(
    cell: Cell, pip: PipInputs, probe: EngineProbe, cache: Path
) -> tuple[list[Path], Download]:
    """The wheels of one cell (cached per cell and platform), and what downloading them cost."""
    python = "".join(probe.python.split(".")[:2])
    dest = cache / f"cp{python}-{probe.machine}" / cell.key.replace("/", "-")
    dest.mkdir(parents=True, exist_ok=True)
    with _locked(dest), tempfile.TemporaryDirectory(prefix="buildbench-links-") as tmp:
        before = {p.name for p in dest.glob("*.whl")}
        # Only the local wheels this cell may see: a CUDA cell never sees `+cpu` wheels.
        links = Path(tmp)
        for wheel in wheels_for(cell, pip.wheels()):
            (links / wheel.name).symlink_to(wheel.resolve())
        command = download_command(cell, pip, probe, dest, links)
        started = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, env=_isolated_env(), check=False
        )
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise PreflightFailed(
            f"--prefetch: pip could not download the wheels of {cell.key}: {last}",
            tip="check the index and the CA bundle (PIP_CERT), or run without --prefetch",
        )
    wheels = [
        dest / Path(m.group("path")).name
        for line in done.stdout.splitlines()
        if (m := _SAVED.match(line))
    ]
    new = [w for w in wheels if w.name not in before]
    download = Download(
        bytes=sum(w.stat().st_size for w in new), seconds=round(seconds, 3), files=len(new)
    )
    return wheels, download


def prefetch_wheels(
    cells: Sequence[Cell], pip: PipInputs, probe: EngineProbe | None
) -> dict[str, tuple[list[Path], Download]]:
    """Every built-in cell's wheels, by cell key; cells of a user's own Dockerfile get none."""
    if probe is None:
        raise UsageError(
            "--prefetch needs a base image with Python to tell the wheels' platform",
            tip="give --base-image a Python image, or run without --prefetch",
        )
    cache = cache_dir()
    return {cell.key: prefetch_cell(cell, pip, probe, cache) for cell in cells if cell.requirements}
