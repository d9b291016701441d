"""A layer's registry size, estimated as its bytes stream past.

The registry's figure is what `docker push` stores: Go's `compress/gzip` at its default level.
The estimate is zlib-ng at level 6: like Go it matches 4 bytes at least (zlib: 3), and it lands
within +-0.3% of Go's size per layer of 1 MiB or more on what was measured (onnx/cpu's layers
against a registry's manifest, `benchmarks/image_read.py --registry`; then Go 1.19 itself on
shared libraries, site-packages, docs, Go sources, torch's shared objects and random data), at
2.4x the speed of zlib's level 6, which was 1.4% under in total, 2.6% under on one layer, and
42% under on a tar of 32-bit counters. Layers of a few KB may be off by 2% (17 bytes of 1,133).

Each layer blob's bytes go to the gzip sizer (independent 8 MiB blocks on a thread pool) and to
SHA-256; both release the GIL, so they overlap the tar walk on the reading thread. A layer whose
size is known from an earlier read is hashed only (the hash then checks the known size).
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from zlib_ng import zlib_ng

from buildbench.measure.archive.model import Blob
from buildbench.measure.archive.stream import Sink

_BLOCK = 8 * 1024 * 1024  # deflated independently: costs ~0.05% against one stream
_LEVEL = 6
# What a known size depends on: a new deflate, its settings, or how blocks are cut and framed
# (`_SIZING`, below) makes every known size stale.
_SIZING = 1
ESTIMATOR = f"zlib-ng-{zlib_ng.ZLIBNG_VERSION}-level{_LEVEL}-{_BLOCK >> 20}MiB-v{_SIZING}"
_GZIP_FRAMING = 18  # gzip header and trailer around each layer's deflate data
WORKERS = os.cpu_count() or 1
_IN_FLIGHT = 2 * WORKERS  # blocks held in memory at once
# Below this a layer is deflated whatever is known: it costs less than the look-up is worth.
KNOWN_MIN_BYTES = 1024 * 1024


def deflate_size(block: bytes) -> int:
    return len(zlib_ng.compress(block, _LEVEL, -15))  # raw deflate: no zlib header or trailer


class Compressor:
    """Deflated sizes of blocks on the pool, settled in order so memory stays bounded."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._pending: deque[tuple[Blob, Future[int]]] = deque()

    def submit(self, blob: Blob, block: bytes) -> None:
        self._pending.append((blob, self._pool.submit(deflate_size, block)))
        while len(self._pending) > _IN_FLIGHT:
            self._settle_oldest()

    def drain(self) -> None:
        while self._pending:
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        blob, future = self._pending.popleft()
        blob.compressed_bytes += future.result()


class Blocks:
    """Cuts a member's bytes into the 8 MiB blocks that are deflated independently."""

    def __init__(self, compressor: Compressor, blob: Blob) -> None:
        self._compressor = compressor
        self._blob = blob
        self._parts: list[bytes] = []
        self._buffered = 0
        blob.compressed_bytes += _GZIP_FRAMING

    def feed(self, data: bytes) -> None:
        self._parts.append(data)
        self._buffered += len(data)
        if self._buffered < _BLOCK:
            return
        joined = b"".join(self._parts)
        whole = len(joined) - len(joined) % _BLOCK
        for start in range(0, whole, _BLOCK):
            # Pieces tile blocks exactly, so this slice is usually `joined` itself: no copy.
            self._compressor.submit(self._blob, joined[start : start + _BLOCK])
        rest = joined[whole:]
        self._parts, self._buffered = ([rest] if rest else []), len(rest)

    def close(self) -> None:
        if self._buffered:
            self._compressor.submit(self._blob, b"".join(self._parts))
        self._parts, self._buffered = [], 0


class Digest:
    """SHA-256 of an uncompressed layer as it streams, for `sink` too (None: hashed only)."""

    def __init__(self, blob: Blob, sink: Sink | None) -> None:
        self._blob = blob
        self._sink = sink
        self._hash = hashlib.sha256()

    def feed(self, data: bytes) -> None:
        self._hash.update(data)  # releases the GIL: the tar walk goes on meanwhile
        if self._sink is not None:
            self._sink.feed(data)

    def close(self) -> None:
        self._blob.digest = f"sha256:{self._hash.hexdigest()}"
        if self._sink is not None:
            self._sink.close()


class Stored:
    """An already compressed blob (OCI layouts may keep layers gzip'd): its size is its size."""

    def __init__(self, blob: Blob) -> None:
        self._blob = blob

    def feed(self, data: bytes) -> None:
        self._blob.compressed_bytes += len(data)

    def close(self) -> None:
        pass
