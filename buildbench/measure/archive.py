"""One pass over `docker save`: each layer's registry size, its files and its package metadata.

The archive is read once, as the engine streams it. Each layer blob is teed: every byte goes to
the gzip sizer (independent 8 MiB blocks on a thread pool) and to SHA-256, while `tarfile` walks
the same bytes to index the layer's entries and keep the few small files the contents analysis
reads (pip's RECORD and METADATA, dpkg's status and file lists). The tar walk is pure Python on
the reading thread; deflate and SHA-256 release the GIL, so they overlap it.

The registry's figure is what `docker push` stores: Go's `compress/gzip` at its default level.
The estimate is zlib-ng at level 6: like Go it matches 4 bytes at least (zlib: 3), and it lands
within +-0.3% of Go's size per layer of 1 MiB or more on what was measured (onnx/cpu's layers
against a registry's manifest, `benchmarks/image_read.py --registry`; then Go 1.19 itself on
shared libraries, site-packages, docs, Go sources, torch's shared objects and random data), at
2.4x the speed of zlib's level 6, which was 1.4% under in total, 2.6% under on one layer, and
42% under on a tar of 32-bit counters. Layers of a few KB may be off by 2% (17 bytes of 1,133).

A layer's compressed size is a function of its bytes, so `sizes` (measure/sizecache.py) may
know it from an earlier read: such a layer is hashed, not deflated, and its SHA-256 must then be
the diff_id the known size is for, or that size is forgotten and `StaleLayerSizes` raised: the
caller reads again (measure/image.py), so no entry can give a figure a deflate would not.

Engine 20.10 writes the legacy layout (`<id>/layer.tar`, `<config>.json`, `manifest.json`); newer
engines write the OCI layout (`blobs/sha256/<digest>`, `index.json`, and `manifest.json` too).
Members come in any order (the manifest is often last), so every member is classified by its
first bytes as it streams past and the manifest is resolved at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Literal, Protocol

from zlib_ng import zlib_ng

ProgressCallback = Callable[[int], None]

_BLOCK = 8 * 1024 * 1024  # deflated independently: costs ~0.05% against one stream
_LEVEL = 6
# What a known size depends on: a new deflate, its settings, or how blocks are cut and framed
# (`_SIZING`, below) makes every known size stale.
_SIZING = 1
ESTIMATOR = f"zlib-ng-{zlib_ng.ZLIBNG_VERSION}-level{_LEVEL}-{_BLOCK >> 20}MiB-v{_SIZING}"
_GZIP_FRAMING = 18  # gzip header and trailer around each layer's deflate data
_WORKERS = os.cpu_count() or 1
_IN_FLIGHT = 2 * _WORKERS  # blocks held in memory at once
_PIECE = 1024 * 1024  # the tee takes the archive in pieces that tile the 8 MiB blocks exactly
# A gzip'd layer is read as a stream: each header read copies what is left of this buffer.
_GZIP_BUFSIZE = 64 * 1024
_PROGRESS_STEP = 8 * 1024 * 1024
# Below this a layer is deflated whatever is known: it costs less than the look-up is worth.
KNOWN_MIN_BYTES = 1024 * 1024
_SMALL_LIMIT = 64 * 1024 * 1024  # configs and manifests are KBs; anything bigger is data
_METADATA_LIMIT = 32 * 1024 * 1024  # a dpkg status or RECORD file is at most a few MB
_METADATA_HEAD = 64 * 1024  # METADATA's Name and Version headers come first
_ZERO_BLOCK = bytes(512)
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_NOP_PREFIX = "/bin/sh -c #(nop) "
# Classic builder RUN: "/bin/sh -c cmd", with "|2 A=1 B=2 " in front when build args are set.
_SHELL_PREFIX = re.compile(r"^(?:\|\d+ (?:\S+=\S* )*)?/bin/sh -c ")
_BUILDKIT_SHELL = "RUN /bin/sh -c "


class EntryKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    WHITEOUT = "whiteout"  # `.wh.<name>`: the path was deleted
    OPAQUE = "opaque"  # `.wh..wh..opq`: the directory hides what lower layers put in it
    OTHER = "other"  # devices, fifos


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One entry of a layer, its path relative to `/` (no leading slash).

    `size` is what the entry adds to the engine's layer size: a regular file's length, a
    symlink's target length; 0 for a hard link (its data is counted at the file it links to).
    `link` is a symlink's target as written, or a hard link's target path.
    """

    path: str
    kind: EntryKind
    size: int = 0
    link: str | None = None


@dataclass(frozen=True)
class LayerInfo:
    index: int
    diff_id: str
    instruction: str | None  # None when the image's history does not cover the layer
    size_bytes: int
    compressed_bytes: int
    base: bool
    files: list[FileEntry]
    # Small files kept while streaming (`*.dist-info/RECORD`, `METADATA` reduced to its Name
    # and Version, `var/lib/dpkg/status`, `status.d/*`, `info/*.list`), by path.
    metadata: dict[str, bytes]


@dataclass(frozen=True)
class ArchiveAnalysis:
    """Everything one pass over `docker save` learns about an image."""

    # The layers gzip'd at level 6; a blob the manifest lists twice counts once, as a
    # registry stores it once.
    compressed_size_bytes: int
    layers: list[LayerInfo]
    config: dict[str, Any]  # the image config JSON: `config.Env`, `rootfs`, `history`...
    warnings: list[str] = field(default_factory=list)

    @property
    def base_layers(self) -> int:
        return sum(layer.base for layer in self.layers)

    @property
    def env(self) -> dict[str, str]:
        pairs = (self.config.get("config") or {}).get("Env") or []
        return dict(_env_pair(p) for p in pairs)


@dataclass(frozen=True)
class KnownSize:
    """A layer's compressed size from an earlier read: `compressed_bytes` of the layer whose
    bytes are `raw_bytes` long and hash to `diff_id`."""

    diff_id: str
    raw_bytes: int
    compressed_bytes: int


class LayerSizes(Protocol):
    """Compressed sizes by content, kept between reads (measure/sizecache.py keeps them on disk)."""

    def lookup(self, member: str, raw_bytes: int) -> KnownSize | None:
        """What is known of the archive member `member`, `raw_bytes` long; None: deflate it."""
        ...

    def record(self, member: str, size: KnownSize) -> None:
        """`member`'s bytes were deflated here and hash to `size.diff_id`."""
        ...

    def forget(self, diff_id: str) -> None:
        """What was known of `diff_id` is wrong: drop it."""
        ...


class StaleLayerSizes(Exception):
    """A known size was for other bytes than the layer's. It is forgotten: read again."""

    def __init__(self, diff_ids: list[str]) -> None:
        super().__init__(f"known compressed sizes did not match the layers: {', '.join(diff_ids)}")
        self.diff_ids = diff_ids


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
    archive = _Archive(sizes)
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        compressor = _Compressor(pool)
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            for member in tar:
                archive.take(stream, member, compressor)
        compressor.drain()
    stream.drain()  # the tar's zero padding: read so the progress ends at the stream's length
    return archive.resolve(base_layers)


# ---------------------------------------------------------------------------------------------
# Reading: the engine's chunks as a file, the tee and the compressor


class _Pieces(io.RawIOBase):
    """Byte strings read once, front to back, as a file: `read`, and `seek` forward only, so
    that `tarfile` in random-access mode skips a member's data by moving an offset instead of
    copying it through a stream buffer (most of an archive's bytes are file data)."""

    def __init__(self) -> None:
        super().__init__()
        self._piece = b""
        self._offset = 0
        self._passed = 0  # bytes in the pieces before this one

    def _next_piece(self) -> bytes:
        """The next piece; b"" at the end."""
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._passed + self._offset

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        target = offset if whence == io.SEEK_SET else self.tell() + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self.tell():
            raise io.UnsupportedOperation("a stream read once only seeks forward")
        while target > self._passed + len(self._piece) and self._advance():
            pass
        self._offset = min(target - self._passed, len(self._piece))
        return self.tell()

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(_PIECE), b""))
        parts = []
        while size > 0 and (self._offset < len(self._piece) or self._advance()):
            # Slicing at an offset, not chopping the piece's front off: no quadratic copying.
            data = self._piece[self._offset : self._offset + size]
            self._offset += len(data)
            size -= len(data)
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def drain(self) -> None:
        """Read to the end (what follows a tar's end marker: its zero padding)."""
        self._offset = len(self._piece)
        while self._advance():
            self._offset = len(self._piece)

    def _advance(self) -> bool:
        self._passed += len(self._piece)
        self._piece, self._offset = self._next_piece(), 0
        return bool(self._piece)


class ChunkStream(_Pieces):
    """The `docker save` chunks as a file for `tarfile`, counting bytes for `on_progress`."""

    def __init__(self, chunks: Iterable[bytes], on_progress: ProgressCallback | None) -> None:
        super().__init__()
        self._chunks: Iterator[bytes] = iter(chunks)
        self._read = 0
        self._reported = 0
        self._on_progress = on_progress

    def drain(self) -> None:
        super().drain()
        if self._on_progress is not None and self._reported != self._read:
            self._on_progress(self._read)

    def _next_piece(self) -> bytes:
        for chunk in self._chunks:
            if not chunk:
                continue  # an empty chunk is not the end
            self._read += len(chunk)
            if self._on_progress is not None and self._read - self._reported >= _PROGRESS_STEP:
                self._reported = self._read
                self._on_progress(self._read)
            return chunk
        return b""


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Member:
    """A regular member's data, read straight from the archive: no buffer between."""

    def __init__(self, stream: ChunkStream, start: int, size: int) -> None:
        self._stream = stream
        self._start = start
        self._size = size
        self._position = 0

    def read(self, size: int = -1, /) -> bytes:
        left = self._size - self._position
        self._stream.seek(self._start + self._position)
        data = self._stream.read(left if size < 0 else min(size, left))
        self._position += len(data)
        return data


class _Sink(Protocol):
    def feed(self, data: bytes) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Blob:
    """What the pass learnt about one archive member that may be a layer."""

    raw_bytes: int = 0
    compressed_bytes: int = 0
    size_bytes: int = 0
    files: list[FileEntry] = field(default_factory=list)
    metadata: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    digest: str | None = None  # "sha256:...": of an uncompressed layer's bytes as they streamed
    known: KnownSize | None = None  # where `compressed_bytes` came from, when not deflated here


def _deflate_size(block: bytes) -> int:
    return len(zlib_ng.compress(block, _LEVEL, -15))  # raw deflate: no zlib header or trailer


class _Compressor:
    """Deflated sizes of blocks on the pool, settled in order so memory stays bounded."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._pending: deque[tuple[_Blob, Future[int]]] = deque()

    def submit(self, blob: _Blob, block: bytes) -> None:
        self._pending.append((blob, self._pool.submit(_deflate_size, block)))
        while len(self._pending) > _IN_FLIGHT:
            self._settle_oldest()

    def drain(self) -> None:
        while self._pending:
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        blob, future = self._pending.popleft()
        blob.compressed_bytes += future.result()


class _Blocks:
    """Cuts a member's bytes into the 8 MiB blocks that are deflated independently."""

    def __init__(self, compressor: _Compressor, blob: _Blob) -> None:
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


class _Digest:
    """SHA-256 of an uncompressed layer as it streams, for `sink` too (None: hashed only)."""

    def __init__(self, blob: _Blob, sink: _Sink | None) -> None:
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


class _Stored:
    """An already compressed blob (OCI layouts may keep layers gzip'd): its size is its size."""

    def __init__(self, blob: _Blob) -> None:
        self._blob = blob

    def feed(self, data: bytes) -> None:
        self._blob.compressed_bytes += len(data)

    def close(self) -> None:
        pass


class _Tee(_Pieces):
    """A layer blob as `tarfile` reads it; every byte is also fed to `sink`, in 1 MiB pieces."""

    def __init__(self, source: _Reader, head: bytes, sink: _Sink) -> None:
        super().__init__()
        self._source = source
        self._head: bytes | None = head
        self._sink = sink

    def drain(self) -> None:
        """Feed the rest of the blob (what follows the tar's end marker) to the sink."""
        super().drain()
        self._sink.close()

    def _next_piece(self) -> bytes:
        if self._head is not None:
            # The sniffed head and the rest of its piece: later pieces stay block-aligned.
            piece = self._head + self._source.read(_PIECE - len(self._head))
            self._head = None
        else:
            piece = self._source.read(_PIECE)
        if piece:
            self._sink.feed(piece)
        return piece


# ---------------------------------------------------------------------------------------------
# The archive's members


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


class _Archive:
    """The members seen so far, resolved against the manifest once the stream ends."""

    def __init__(self, sizes: LayerSizes | None) -> None:
        self.sizes = sizes
        self.blobs: dict[str, _Blob] = {}
        self.small: dict[str, bytes] = {}
        self.links: dict[str, str] = {}  # 20.10 saves a repeated layer as a link to its first
        self.warnings: list[str] = []

    def take(self, stream: ChunkStream, member: tarfile.TarInfo, compressor: _Compressor) -> None:
        if member.issym() or member.islnk():
            self.links[member.name] = _member_link(member)
            return
        if not member.isreg() or member.issparse():  # `docker save` writes neither sparse files
            return  # nor devices: directories are all that is left
        handle = _Member(stream, member.offset_data, member.size)
        head = handle.read(512)
        kind = sniff_format(head)
        if kind is None and member.size <= _SMALL_LIMIT:
            self.small[member.name] = head + handle.read()
            return
        blob = _Blob(raw_bytes=member.size)
        self.blobs[member.name] = blob
        if kind == LayerFormat.TAR and member.size >= KNOWN_MIN_BYTES and self.sizes:
            known = self.sizes.lookup(member.name, member.size)
            if known is not None and known.raw_bytes == member.size:
                blob.known, blob.compressed_bytes = known, known.compressed_bytes
        _read_blob(handle, head, kind, blob, compressor)
        if blob.error:
            self.warnings.append(f"{member.name}: {blob.error}")

    def resolve(self, base_layers: int) -> ArchiveAnalysis:
        config_name, layer_names = self._manifest()
        config = self._json(config_name)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(layer_names):
            self.warnings.append(
                f"the config lists {len(diff_ids)} layers, the manifest {len(layer_names)}"
            )
        if base_layers > len(layer_names):
            raise ValueError(f"base_layers={base_layers}, but the image has {len(layer_names)}")
        instructions = _layer_instructions(config.get("history") or [])
        layers, counted, stale = [], set(), []
        compressed_total = 0
        for index, name in enumerate(layer_names):
            path = self._follow(name)
            blob = self.blobs.get(path)
            if blob is None:
                raise ValueError(f"the image archive has no layer {name}")
            diff_id = diff_ids[index] if index < len(diff_ids) else ""
            if path not in counted:
                counted.add(path)
                compressed_total += blob.compressed_bytes
                if (wrong := self._settle_size(path, blob, diff_id)) is not None:
                    stale.append(wrong)
            layers.append(
                LayerInfo(
                    index=index,
                    diff_id=diff_id,
                    instruction=instructions[index] if index < len(instructions) else None,
                    size_bytes=blob.size_bytes,
                    compressed_bytes=blob.compressed_bytes,
                    base=index < base_layers,
                    files=blob.files,
                    metadata=blob.metadata,
                )
            )
        if stale:
            raise StaleLayerSizes(stale)
        return ArchiveAnalysis(compressed_total, layers, config, self.warnings)

    def _settle_size(self, path: str, blob: _Blob, diff_id: str) -> str | None:
        """Record a size deflated here under the diff_id its bytes hash to. A size known for
        this layer that was for other bytes is forgotten, and its diff_id returned."""
        if self.sizes is None or blob.digest is None:
            return None
        if blob.known is None:
            # Not when the config and the bytes disagree, nor when it is cheaper to deflate.
            if blob.digest == diff_id and blob.raw_bytes >= KNOWN_MIN_BYTES:
                self.sizes.record(path, KnownSize(diff_id, blob.raw_bytes, blob.compressed_bytes))
            return None
        if blob.digest == blob.known.diff_id == diff_id:
            return None
        self.sizes.forget(blob.known.diff_id)
        return blob.known.diff_id

    def _manifest(self) -> tuple[str, list[str]]:
        """The config's and the layers' member names, from manifest.json or else index.json."""
        if "manifest.json" in self.small:
            manifest = json.loads(self.small["manifest.json"])
            if not manifest:
                raise ValueError("the image archive's manifest.json is empty")
            if len(manifest) > 1:
                self.warnings.append("the archive holds several images: the first is analysed")
            return manifest[0]["Config"], list(manifest[0]["Layers"])
        if "index.json" not in self.small:
            raise ValueError("the image archive has no manifest.json")
        document = self._json("index.json")
        while "manifests" in document:  # an index, maybe of indexes: take the first image
            document = self._json(_blob_path(document["manifests"][0]["digest"]))
        layers = [_blob_path(layer["digest"]) for layer in document["layers"]]
        return _blob_path(document["config"]["digest"]), layers

    def _json(self, name: str) -> dict[str, Any]:
        data = self.small.get(self._follow(name))
        if data is None:
            raise ValueError(f"the image archive has no {name}")
        value: dict[str, Any] = json.loads(data)
        return value

    def _follow(self, name: str) -> str:
        for _ in range(40):  # as the kernel's symlink limit: a cycle is an error, not a hang
            if name not in self.links:
                return name
            name = self.links[name]
        raise ValueError(f"the image archive's links loop at {name}")


def _member_link(member: tarfile.TarInfo) -> str:
    if member.islnk():
        return member.linkname
    return posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))


def _blob_path(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _read_blob(
    handle: _Reader, head: bytes, kind: LayerFormat | None, blob: _Blob, compressor: _Compressor
) -> None:
    """Size one big member and, when it is a layer tar we can read, index its entries."""
    sink: _Sink
    if kind in (LayerFormat.GZIP, LayerFormat.ZSTD):
        sink = _Stored(blob)
    else:  # hashed, and deflated unless its size is known (the hash then checks that it is)
        sink = _Digest(blob, None if blob.known else _Blocks(compressor, blob))
    tee = _Tee(handle, head, sink)
    if kind == LayerFormat.ZSTD:
        blob.error = "zstd layer: sized as stored, not indexed"
    elif kind is not None:
        try:
            # A gzip'd layer decompresses as a stream; a plain one is read at random (forward).
            mode: Literal["r|gz", "r:"] = "r|gz" if kind == LayerFormat.GZIP else "r:"
            with tarfile.open(fileobj=tee, mode=mode, bufsize=_GZIP_BUFSIZE) as layer:
                for entry in layer:
                    _index_entry(layer, entry, blob)
        except (tarfile.TarError, EOFError, OSError) as exc:
            blob.error = f"layer not indexed: {exc}"
    tee.drain()


# ---------------------------------------------------------------------------------------------
# A layer's entries


def _index_entry(layer: tarfile.TarFile, entry: tarfile.TarInfo, blob: _Blob) -> None:
    path = normalise_path(entry.name)
    if not path:
        return
    directory, name = posixpath.split(path)
    if name.startswith(_WHITEOUT):
        if name == _OPAQUE:
            blob.files.append(FileEntry(directory, EntryKind.OPAQUE))
        elif not name.startswith(_WHITEOUT + _WHITEOUT):  # other `.wh..wh.` names: aufs's own
            blob.files.append(FileEntry(posixpath.join(directory, name[4:]), EntryKind.WHITEOUT))
        return
    if entry.isreg():
        blob.files.append(FileEntry(path, EntryKind.FILE, entry.size))
        blob.size_bytes += entry.size
        _keep_metadata(layer, entry, path, blob)
    elif entry.isdir():
        blob.files.append(FileEntry(path, EntryKind.DIR))
    elif entry.issym():
        # The engine counts a symlink as lstat does: the length of its target, in bytes.
        size = len(entry.linkname.encode("utf-8", "surrogateescape"))
        blob.files.append(FileEntry(path, EntryKind.SYMLINK, size, entry.linkname))
        blob.size_bytes += size
    elif entry.islnk():
        blob.files.append(FileEntry(path, EntryKind.HARDLINK, 0, normalise_path(entry.linkname)))
    else:
        blob.files.append(FileEntry(path, EntryKind.OTHER))


def normalise_path(name: str) -> str:
    path = posixpath.normpath("/" + name).lstrip("/")
    return "" if path == "." else path


def _wanted(path: str) -> bool | None:
    """Whether to keep this file's contents: True whole, False its head only, None not at all."""
    if path.endswith(".dist-info/RECORD"):
        return True
    if path.endswith(".dist-info/METADATA"):
        return False
    if path == "var/lib/dpkg/status" or path.startswith("var/lib/dpkg/status.d/"):
        return True
    if path.startswith("var/lib/dpkg/info/") and path.endswith(".list"):
        return True
    return None


def _keep_metadata(layer: tarfile.TarFile, entry: tarfile.TarInfo, path: str, blob: _Blob) -> None:
    whole = _wanted(path)
    if whole is None or entry.size > _METADATA_LIMIT:
        return
    handle = layer.extractfile(entry)
    if handle is None:
        return
    # Reading the current entry in stream mode uses the same bytes the walk reads anyway.
    if whole:
        blob.metadata[path] = handle.read()
    else:
        blob.metadata[path] = _name_and_version(handle.read(_METADATA_HEAD))


def _name_and_version(head: bytes) -> bytes:
    kept = []
    for line in head.splitlines():
        if not line.strip():
            break  # the headers end at the first blank line; the description follows
        if line.startswith((b"Name:", b"Version:")):
            kept.append(line)
    return b"".join(line + b"\n" for line in kept)


# ---------------------------------------------------------------------------------------------
# The config


def _layer_instructions(history: list[dict[str, Any]]) -> list[str | None]:
    """The instruction of each layer: history entries marked `empty_layer` made none."""
    return [_instruction(entry) for entry in history if not entry.get("empty_layer")]


def _instruction(entry: dict[str, Any]) -> str | None:
    text = str(entry.get("created_by") or "").strip()
    if text.startswith(_NOP_PREFIX):
        return text[len(_NOP_PREFIX) :].strip()
    if match := _SHELL_PREFIX.match(text):
        return "RUN " + text[match.end() :]
    text = text.removesuffix("# buildkit").rstrip()
    if text.startswith(_BUILDKIT_SHELL):
        return "RUN " + text[len(_BUILDKIT_SHELL) :]
    return text or entry.get("comment") or None


def _env_pair(pair: str) -> tuple[str, str]:
    name, _, value = pair.partition("=")
    return name, value
