"""What one pass over an image archive learns: the layers' sizes, entries and kept metadata, and
the sizes known from earlier reads (measure/sizecache.py keeps them on disk)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


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
        return dict(env_pair(p) for p in pairs)


@dataclass(frozen=True)
class KnownSize:
    """A layer's compressed size from an earlier read: `compressed_bytes` of the layer whose
    bytes are `raw_bytes` long and hash to `diff_id`."""

    diff_id: str
    raw_bytes: int
    compressed_bytes: int


class LayerSizes(Protocol):
    """Compressed sizes by content, kept between reads (measure/sizecache.py keeps them on disk):
    a layer's by its diff_id, a big file's block's by its SHA-256."""

    def lookup(self, member: str, raw_bytes: int) -> KnownSize | None:
        """What is known of the archive member `member`, `raw_bytes` long; None: deflate it."""
        ...

    def record(self, member: str, size: KnownSize) -> None:
        """`member`'s bytes were deflated here and hash to `size.diff_id`."""
        ...

    def forget(self, diff_id: str) -> None:
        """What was known of `diff_id` is wrong: drop it."""
        ...

    def block_size(self, digest: str, raw_bytes: int) -> int | None:
        """The deflated size of a big file's block whose SHA-256 is `digest`; None: deflate it."""
        ...

    def record_block(self, digest: str, raw_bytes: int, compressed_bytes: int) -> None:
        """A big file's block hashing to `digest` was deflated here (from a worker thread)."""
        ...


class StaleLayerSizes(Exception):
    """A known size was for other bytes than the layer's. It is forgotten: read again."""

    def __init__(self, diff_ids: list[str]) -> None:
        super().__init__(f"known compressed sizes did not match the layers: {', '.join(diff_ids)}")
        self.diff_ids = diff_ids


@dataclass
class Blob:
    """What the pass learnt about one archive member that may be a layer."""

    raw_bytes: int = 0
    compressed_bytes: int = 0
    size_bytes: int = 0
    files: list[FileEntry] = field(default_factory=list)
    metadata: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    digest: str | None = None  # "sha256:...": of an uncompressed layer's bytes as they streamed
    known: KnownSize | None = None  # where `compressed_bytes` came from, when not deflated here


def env_pair(pair: str) -> tuple[str, str]:
    name, _, value = pair.partition("=")
    return name, value
