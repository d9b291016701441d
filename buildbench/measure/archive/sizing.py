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

Within a layer, a file of 64 KiB or more is cut into blocks of its own, from its first byte
(`Segments`): the same file gives the same blocks in any layer, so a block's size is kept by
its SHA-256 (`LayerSizes.block_size`) and a rebuilt image, whose layers are new only in their
headers and small files, deflates just those (one stream of blocks of their own). A big file
costs deflate its window and a block's end: measured, well under 0.1% of a layer's size.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from zlib_ng import zlib_ng

from buildbench.measure.archive.model import Blob, LayerSizes
from buildbench.measure.archive.stream import Sink

Buffer = bytes | memoryview  # a piece of a layer, or a view of one: never copied to be cut
_BLOCK = 8 * 1024 * 1024  # deflated independently: costs ~0.05% against one stream
_LEVEL = 6
# What a known size depends on: a new deflate, its settings, or how blocks are cut and framed
# (`_SIZING`, below) makes every known size stale.
_SIZING = 2  # 2: big files in blocks of their own
ESTIMATOR = f"zlib-ng-{zlib_ng.ZLIBNG_VERSION}-level{_LEVEL}-{_BLOCK >> 20}MiB-v{_SIZING}"
_GZIP_FRAMING = 18  # gzip header and trailer around each layer's deflate data
WORKERS = os.cpu_count() or 1
_IN_FLIGHT = 2 * WORKERS * _BLOCK  # bytes held in memory at once: a big file's last block or a
# file under 8 MiB is small, and the pool must not wait for the reader's next one
# Below this a layer is deflated whatever is known: it costs less than the look-up is worth.
KNOWN_MIN_BYTES = 1024 * 1024
# A file this long is cut into blocks of its own, known by content: 87% of PyTorch's layer, its
# estimate within 0.04% of the layer's as one stream (1 MiB: 71%; benchmarks/image_read.py).
BIG_FILE = 64 * 1024


def deflate_size(block: Buffer) -> int:
    return len(zlib_ng.compress(block, _LEVEL, -15))  # raw deflate: no zlib header or trailer


def block_size(block: Buffer, known: LayerSizes | None) -> int:
    """`block`'s deflated size: from `known` by its content, else deflated (and kept there)."""
    if known is None:
        return deflate_size(block)
    digest = hashlib.sha256(block).hexdigest()  # releases the GIL, as the deflate does
    size = known.block_size(digest, len(block))
    if size is None:
        size = deflate_size(block)
        known.record_block(digest, len(block), size)
    return size


class Compressor:
    """Deflated sizes of blocks on the pool, settled in order so memory stays bounded.
    `known`: sizes of a big file's blocks by content (None: every block deflated)."""

    def __init__(self, pool: ThreadPoolExecutor, known: LayerSizes | None = None) -> None:
        self._pool = pool
        self._known = known
        self._pending: deque[tuple[Blob, int, Future[int]]] = deque()
        self._in_flight = 0

    def submit(self, blob: Blob, block: Buffer, *, stable: bool = False) -> None:
        """`stable`: the block is a big file's, the same in any layer that holds the file."""
        known = self._known if stable else None
        self._pending.append((blob, len(block), self._pool.submit(block_size, block, known)))
        self._in_flight += len(block)
        while self._in_flight > _IN_FLIGHT:
            self._settle_oldest()

    def drain(self) -> None:
        while self._pending:
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        blob, raw, future = self._pending.popleft()
        blob.compressed_bytes += future.result()
        self._in_flight -= raw


class Blocks:
    """Cuts bytes into the 8 MiB blocks that are deflated independently, from the first."""

    def __init__(self, compressor: Compressor, blob: Blob, *, stable: bool = False) -> None:
        self._compressor = compressor
        self._blob = blob
        self._stable = stable
        self._parts: list[Buffer] = []
        self._buffered = 0

    def feed(self, data: Buffer) -> None:
        self._parts.append(data)
        self._buffered += len(data)
        if self._buffered < _BLOCK:
            return
        # Views, not slices: pieces that tile blocks (a layer's start) and pieces that do not (a
        # big file's, the rest after one) are copied once, by the join.
        joined = memoryview(b"".join(self._parts))
        whole = len(joined) - len(joined) % _BLOCK
        for start in range(0, whole, _BLOCK):
            self._compressor.submit(self._blob, joined[start : start + _BLOCK], stable=self._stable)
        rest = joined[whole:]
        self._parts, self._buffered = ([rest] if rest else []), len(rest)

    def close(self) -> None:
        if self._buffered:
            self._compressor.submit(self._blob, b"".join(self._parts), stable=self._stable)
        self._parts, self._buffered = [], 0


class Segments:
    """A layer tar's bytes for the gzip sizer: each big file's own in blocks of its own, from its
    first byte; the rest (headers, small files) in blocks of one stream.

    The tar walk says where each entry's data lies (`entry`), at most a piece or two behind the
    bytes fed, maybe just before its data: bytes before an entry's data are the rest's; a big
    file's own go to its blocks as they come. Bytes not yet placed wait here."""

    def __init__(self, compressor: Compressor, blob: Blob) -> None:
        self._compressor = compressor
        self._blob = blob
        blob.compressed_bytes += _GZIP_FRAMING
        self._waiting: deque[Buffer] = deque()
        self._waiting_bytes = 0
        self._at = 0  # offset of the first waiting byte in the layer
        self._rest = Blocks(compressor, blob)
        self._big: Blocks | None = None  # the big file being fed
        self._next_big: tuple[int, int] | None = None  # a big file's data (start, end), then
        self._big_end = 0  # where it ends, while it is fed

    def entry(self, data_offset: int, size: int) -> None:
        """The walk met an entry whose data is `size` bytes at `data_offset`."""
        if self._big is not None or self._next_big is not None or data_offset < self._at:
            return  # the walk cannot be ahead of a big file's bytes: nothing to cut
        if size >= BIG_FILE:
            self._next_big = (data_offset, data_offset + size)
        else:  # the pieces before it are the rest's (whole pieces: no copy)
            while self._waiting and self._at + len(self._waiting[0]) <= data_offset:
                self._move(len(self._waiting[0]), self._rest)
        self._flow()

    def feed(self, data: Buffer) -> None:
        self._waiting.append(data)
        self._waiting_bytes += len(data)
        self._flow()

    def close(self) -> None:
        self._move(self._waiting_bytes, self._big or self._rest)
        if self._big is not None:
            self._big.close()
        self._rest.close()

    def _flow(self) -> None:
        """Place what the walk has said where to: the rest up to a big file, then the file."""
        while self._waiting_bytes or self._next_big:
            if self._big is not None:
                self._move(min(self._big_end - self._at, self._waiting_bytes), self._big)
                if self._at < self._big_end:
                    return
                self._big.close()
                self._big = None
            elif self._next_big is not None:
                start, end = self._next_big
                self._move(min(start - self._at, self._waiting_bytes), self._rest)
                if self._at < start:
                    return
                self._big = Blocks(self._compressor, self._blob, stable=True)
                self._next_big, self._big_end = None, end
            else:
                return  # the walk has not said yet

    def _move(self, count: int, to: Blocks) -> None:
        """The next `count` waiting bytes to `to`."""
        while count > 0:
            piece = self._waiting.popleft()
            if len(piece) > count:  # cut where a big file begins or ends
                view = memoryview(piece)
                self._waiting.appendleft(view[count:])
                piece = view[:count]
            to.feed(piece)
            count -= len(piece)
            self._at += len(piece)
            self._waiting_bytes -= len(piece)


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
