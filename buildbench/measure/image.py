"""Measure a built image: sizes as the engine and a registry see them, and what is inside."""

from __future__ import annotations

import io
import json
import os
import posixpath
import tarfile
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from buildbench.engine import ContainerSpec, Engine

# Import names of the frameworks the built-in smoke tests know; others report only Python.
FRAMEWORK_MODULES = {"pytorch": "torch", "onnx": "onnxruntime"}

_VERSION_PROBE = """
import json, platform, sys
out = {"python": platform.python_version()}
if len(sys.argv) > 1:
    try:
        out["framework"] = __import__(sys.argv[1]).__version__
    except Exception as exc:
        out["framework_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


@dataclass
class ImageMeasurements:
    size_bytes: int
    layers: int
    bytes_over_base: int | None
    compressed_size_bytes: int | None
    python_version: str | None
    framework_version: str | None


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (the `docker save` stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


_BLOCK = 8 * 1024 * 1024
_GZIP_FRAMING = 18  # gzip header and trailer around the deflate data
_WORKERS = os.cpu_count() or 1
_IN_FLIGHT = 2 * _WORKERS  # blocks held in memory at once


def _deflate_block(block: bytes) -> int:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return len(compressor.compress(block)) + len(compressor.flush())


def _gzip_size(stream: io.BufferedIOBase, pool: ThreadPoolExecutor) -> int:
    """Bytes of `stream` gzip'd at level 6, the level `docker push` uses.

    Compressed as independent 8 MiB blocks on all cores (zlib releases the GIL), as pigz does:
    a few hundred bytes per block more than one single stream (+0.04% on libtorch).
    """
    pending: deque[Future[int]] = deque()
    total = _GZIP_FRAMING
    while block := stream.read(_BLOCK):
        pending.append(pool.submit(_deflate_block, block))
        if len(pending) > _IN_FLIGHT:
            total += pending.popleft().result()
    return total + sum(f.result() for f in pending)


def compressed_size(archive: Iterable[bytes]) -> int:
    """Registry size of an image: the sum of its layers gzip'd, read from `docker save`.

    Every member of the archive is compressed on the fly; the manifest then says which members
    are the image's layers (legacy `<id>/layer.tar` and OCI `blobs/sha256/<digest>` alike).
    The image config and manifests, a few KB, are left out.
    """
    sizes: dict[str, int] = {}
    links: dict[str, str] = {}  # 20.10 writes a layer that repeats as a link to its first copy
    manifest = None
    with (
        ThreadPoolExecutor(max_workers=_WORKERS) as pool,
        tarfile.open(fileobj=io.BufferedReader(_ChunkReader(archive)), mode="r|") as tar,
    ):
        for member in tar:
            if member.issym() or member.islnk():
                links[member.name] = _link_target(member)
                continue
            if not member.isfile():
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            if member.name == "manifest.json":
                manifest = json.load(handle)
            else:
                sizes[member.name] = _gzip_size(handle, pool)
    if not manifest:
        raise ValueError("the image archive has no manifest.json")
    layers = {links.get(layer, layer) for layer in manifest[0]["Layers"]}
    return sum(sizes[layer] for layer in layers)


def _link_target(member: tarfile.TarInfo) -> str:
    if member.islnk():
        return member.linkname
    return posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))


def probe_versions(engine: Engine, image: str, framework: str | None) -> dict[str, str]:
    """Python and framework versions inside the image, from a locked-down throwaway container."""
    module = FRAMEWORK_MODULES.get(framework or "")
    command = ["python", "-c", _VERSION_PROBE, *([module] if module else [])]
    outcome = engine.run(image, ContainerSpec(command=command, timeout_seconds=120))
    lines = outcome.stdout.strip().splitlines()
    if outcome.exit_code != 0 or not lines:
        return {"error": (outcome.stderr or outcome.stdout).strip()[-300:]}
    return json.loads(lines[-1])


def measure_image(
    engine: Engine,
    image_id: str,
    *,
    base_size_bytes: int | None,
    framework: str | None,
    compressed: bool = True,
) -> tuple[ImageMeasurements, list[str]]:
    """Measurements and the warnings met while taking them."""
    info = engine.image(image_id)
    if info is None:
        raise LookupError(f"image {image_id} vanished before it was measured")
    warnings: list[str] = []
    versions = probe_versions(engine, image_id, framework)
    if "error" in versions:
        warnings.append(f"version probe failed: {versions['error']}")
    if "framework_error" in versions:
        warnings.append(f"framework does not import: {versions['framework_error']}")
    return (
        ImageMeasurements(
            size_bytes=info.size_bytes,
            layers=len(info.layers),
            bytes_over_base=None if base_size_bytes is None else info.size_bytes - base_size_bytes,
            compressed_size_bytes=compressed_size(engine.image_archive(image_id))
            if compressed
            else None,
            python_version=versions.get("python"),
            framework_version=versions.get("framework"),
        ),
        warnings,
    )
