"""One pass over `docker save`: each layer's registry size, its files and its package metadata.

The archive is read once, as the engine streams it (`stream`). Each layer blob (`layer`) is
teed: every byte goes to the gzip sizer and to SHA-256 (`sizing`), while `tarfile` walks the
same bytes to index the layer's entries and keep the few small files the contents analysis
reads (`entries`). The members, in either layout, are resolved into the image at the end
(`layout`, with each layer's instruction from the config's history: `history`).

A layer's compressed size is a function of its bytes, so `sizes` (measure/sizecache.py) may
know it from an earlier read: such a layer is hashed, not deflated, and its SHA-256 must then be
the diff_id the known size is for, or that size is forgotten and `StaleLayerSizes` raised: the
caller reads again (measure/image.py), so no entry can give a figure a deflate would not. A
big file's block is known by its own SHA-256, computed as it is sized (`sizing`).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from buildbench.measure.archive.entries import normalise_path
from buildbench.measure.archive.layer import LayerFormat, sniff_format
from buildbench.measure.archive.layout import Archive
from buildbench.measure.archive.model import (
    ArchiveAnalysis,
    EntryKind,
    FileEntry,
    KnownSize,
    LayerInfo,
    LayerSizes,
    StaleLayerSizes,
)
from buildbench.measure.archive.sizing import ESTIMATOR, KNOWN_MIN_BYTES, WORKERS, Compressor
from buildbench.measure.archive.stream import ChunkStream, ProgressCallback

__all__ = [
    "ESTIMATOR",
    "KNOWN_MIN_BYTES",
    "ArchiveAnalysis",
    "ChunkStream",
    "EntryKind",
    "FileEntry",
    "KnownSize",
    "LayerFormat",
    "LayerInfo",
    "LayerSizes",
    "StaleLayerSizes",
    "analyse_archive",
    "normalise_path",
    "sniff_format",
]


def analyse_archive(
    chunks: Iterable[bytes],
    *,
    base_layers: int,
    on_progress: ProgressCallback | None = None,
    sizes: LayerSizes | None = None,
) -> ArchiveAnalysis:
    """Sizes, file index and metadata of every layer, from one read of a `docker save` stream.

    `base_layers`: how many of the image's first layers are its base image's.
    `on_progress(bytes_read)`: called after every 8 MiB read and once more with the total.
    `sizes`: compressed sizes known from earlier reads, and where to record this read's; a known
    size that the layer's SHA-256 contradicts raises `StaleLayerSizes` (after `sizes.forget`).
    """
    if base_layers < 0:
        raise ValueError("base_layers cannot be negative")
    stream = ChunkStream(chunks, on_progress)
    archive = Archive(sizes)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        compressor = Compressor(pool, sizes)
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            for member in tar:
                archive.take(stream, member, compressor)
        compressor.drain()
    stream.drain()  # the tar's zero padding: read so the progress ends at the stream's length
    return archive.resolve(base_layers)
