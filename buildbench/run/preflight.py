"""Checks before the first minute of building, each failing with one line and a tip: the
results folder takes files, the base images are there, the engine's disk has room for the
selected cells, and a container on the build network reaches the pip index.

The engine may be another machine: what is true there (free disk, its CPU, the base image's
Python) is read by small throwaway containers, never from this machine.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from buildbench.engine.api import ContainerSpec, Engine, ImageInfo, tar_of
from buildbench.errors import EngineUnavailable, ImageNotFound, PreflightFailed, UsageError
from buildbench.render import fmt
from buildbench.run.matrix import Cell
from buildbench.run.pipconfig import PipInputs

log = logging.getLogger("buildbench")

PYPI = "https://pypi.org/simple/"
# What a cell needs on the engine's disk while it builds, as (final image, builder stage)
# bytes, when no earlier run in the results folder says better (sizes measured here).
TYPICAL_BYTES = {
    "pytorch/cuda": (5_000_000_000, 5_000_000_000),
    "onnx/cuda": (2_800_000_000, 2_800_000_000),
    "pytorch/cpu": (950_000_000, 950_000_000),
    "onnx/cpu": (350_000_000, 350_000_000),
}
UNKNOWN_BYTES = (2_000_000_000, 2_000_000_000)

_ENGINE_PROBE = """
import json, os, platform, sys
model = ""
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
disk = os.statvfs("/")
try:
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
except (ValueError, OSError):
    libc = ""
print(json.dumps({
    "cpu_model": model or platform.machine(),
    "free_bytes": disk.f_bavail * disk.f_frsize,
    "python": platform.python_version(),
    "machine": platform.machine(),
    "libc": libc,
}))
"""

_INDEX_PROBE = """
import ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[1] or None)
failed = []
for url in sys.argv[2:]:
    try:
        urllib.request.urlopen(url, timeout=20, context=context).close()
    except Exception as exc:
        failed.append(f"{url}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


@dataclass(frozen=True)
class EngineProbe:
    """The engine machine, seen from a container of the base image."""

    cpu_model: str
    free_bytes: int
    python: str  # the base image's Python, e.g. 3.11.2
    machine: str  # x86_64, aarch64
    libc: str  # "glibc 2.36"


def check_results_dir(results_dir: Path) -> None:
    """The results folder can be created and written, before anything is built."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        probe = results_dir / f".buildbench-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"cannot write results to {results_dir}: {exc.strerror}",
            tip="pick a writable directory with --results-dir",
        ) from None


def ensure_base_image(engine: Engine, ref: str) -> ImageInfo:
    """The base image, pulled first if it is missing (before any timing starts)."""
    info = engine.image(ref)
    if info is None:
        log.info("base image %s is not in the engine: pulling it (not part of any time)", ref)
        try:
            engine.pull(ref)
        except (EngineUnavailable, UsageError):  # no engine, or a name it refuses: said as such
            raise
        except Exception as exc:  # any other pull failure means the same to the user
            raise ImageNotFound(
                f"base image {ref} is not in the engine and pulling it failed ({exc})",
                tip="pull it yourself, pass --base-image, or make one with `buildbench base`",
            ) from None
        info = engine.image(ref)
        if info is None:
            raise ImageNotFound(f"base image {ref} is still missing after a pull")
    return info


def probe_engine(engine: Engine, image: str) -> EngineProbe | None:
    """CPU, free disk and the image's Python, from inside a container; None when the image
    has no Python to ask (a user's own base)."""
    outcome = engine.run(
        image, ContainerSpec(command=["python3", "-c", _ENGINE_PROBE], timeout_seconds=60)
    )
    lines = outcome.stdout.strip().splitlines()
    if outcome.exit_code != 0 or not lines:
        log.debug("engine probe failed in %s: %s", image, outcome.stderr[-300:])
        return None
    found = json.loads(lines[-1])
    return EngineProbe(
        cpu_model=str(found["cpu_model"]),
        free_bytes=int(found["free_bytes"]),
        python=str(found["python"]),
        machine=str(found["machine"]),
        libc=str(found["libc"]),
    )


def needed_bytes(
    cells: Sequence[Cell], keep_images: bool, previous: dict[str, int] | None = None
) -> int:
    """Disk a run of `cells` needs at its peak: the images it keeps, plus the biggest build in
    progress (its builder stage and image). `previous`: image sizes an earlier run measured."""
    previous = previous or {}

    def sizes(cell: Cell) -> tuple[int, int]:
        if cell.key in previous:
            return previous[cell.key], previous[cell.key]
        return TYPICAL_BYTES.get(cell.key, UNKNOWN_BYTES)

    peak = max((image + stage for image, stage in map(sizes, cells)), default=0)
    kept = sum(image for image, _ in map(sizes, cells)) if keep_images else 0
    return kept + peak


def check_disk(probe: EngineProbe, needed: int, keep_images: bool) -> None:
    if probe.free_bytes >= needed:
        return
    tip = "free space in the engine's data root (`buildbench clean`, `docker system prune`)"
    if keep_images:
        tip += ", or run with --no-keep-images"
    raise PreflightFailed(
        f"the engine has {fmt.size(probe.free_bytes)} free, and these cells need about "
        f"{fmt.size(needed)}",
        tip=tip,
    )


def index_urls(cells: Sequence[Cell], pip: PipInputs) -> list[str]:
    """The indexes the builder stages will ask, where a cell installs from an index at all."""
    if not any(cell.build_inputs for cell in cells):
        return []
    urls = [pip.index_url or PYPI, *pip.extra_index_urls]
    urls += [c.requirements_index for c in cells if c.build_inputs and c.requirements_index]
    return list(dict.fromkeys(url.rstrip("/") + "/" for url in urls))


def check_index(engine: Engine, image: str, urls: Sequence[str], pip: PipInputs) -> None:
    """A container on the build network (the default bridge, as builds use) reaches the
    indexes, trusting the CA bundle the builds get."""
    if not urls:
        return
    inputs: tuple[tuple[str, bytes], ...] = ()
    bundle = ""
    if pip.ca_bundle:
        inputs = (("/tmp", tar_of({"buildbench-ca.pem": pip.ca_bundle.read_bytes()})),)
        bundle = "/tmp/buildbench-ca.pem"
    spec = ContainerSpec(
        command=["python3", "-c", _INDEX_PROBE, bundle, *urls],
        network=True,
        read_only=False,
        tmpfs={},
        timeout_seconds=90,
        inputs=inputs,
    )
    outcome = engine.run(image, spec)
    if outcome.exit_code == 0:
        return
    failed = (outcome.stdout.strip() or outcome.stderr.strip() or "no answer").splitlines()
    why = fmt.one_line(failed[0], 300)
    raise PreflightFailed(
        f"a container on the build network cannot reach the pip index: {why}",
        tip="check the proxy and --ca-bundle (PIP_CERT), give --pip-index-url, or use --prefetch "
        "with --pip-find-links for a machine without an index",
    )
