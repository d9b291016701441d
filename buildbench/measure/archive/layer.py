"""One big member of the archive: its format sniffed from its first bytes, its size estimated
(or, already compressed, taken as stored), and, when it is a layer tar that can be read, its
entries indexed, all in the one read."""

from __future__ import annotations

import tarfile
from enum import Enum
from typing import Literal

from buildbench.measure.archive.entries import index_entry
from buildbench.measure.archive.model import Blob
from buildbench.measure.archive.sizing import Compressor, Digest, Segments, Stored
from buildbench.measure.archive.stream import Reader, Sink, Tee

# A gzip'd layer is read as a stream: each header read copies what is left of this buffer.
_GZIP_BUFSIZE = 64 * 1024
_ZERO_BLOCK = bytes(512)


class LayerFormat(Enum):
    TAR = "tar"
    GZIP = "gzip"
    ZSTD = "zstd"


def sniff_format(head: bytes) -> LayerFormat | None:
    """What a member holds, from its first 512 bytes; None for JSON and other small files."""
    if head.startswith(b"\x1f\x8b"):
        return LayerFormat.GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return LayerFormat.ZSTD
    if len(head) == 512 and (head[257:262] == b"ustar" or head == _ZERO_BLOCK):
        return LayerFormat.TAR  # an empty layer is just the tar's zero end blocks
    return None


def read_blob(
    handle: Reader, head: bytes, kind: LayerFormat | None, blob: Blob, compressor: Compressor
) -> None:
    """Size one big member and, when it is a layer tar we can read, index its entries."""
    sink: Sink
    segments = None
    if kind in (LayerFormat.GZIP, LayerFormat.ZSTD):
        sink = Stored(blob)
    else:  # hashed, and deflated unless its size is known (the hash then checks that it is)
        segments = None if blob.known else Segments(compressor, blob)
        sink = Digest(blob, segments)
    tee = Tee(handle, head, sink)
    if kind == LayerFormat.ZSTD:
        blob.error = "zstd layer: sized as stored, not indexed"
    elif kind is not None:
        try:
            # A gzip'd layer decompresses as a stream; a plain one is read at random (forward).
            mode: Literal["r|gz", "r:"] = "r|gz" if kind == LayerFormat.GZIP else "r:"
            with tarfile.open(fileobj=tee, mode=mode, bufsize=_GZIP_BUFSIZE) as layer:
                for entry in layer:
                    if segments is not None and entry.isreg() and not entry.issparse():
                        segments.entry(entry.offset_data, entry.size)
                    index_entry(layer, entry, blob)
        except (tarfile.TarError, EOFError, OSError) as exc:
            blob.error = f"layer not indexed: {exc}"
    tee.drain()
