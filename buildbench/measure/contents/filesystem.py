"""The final filesystem: an image's layers stacked as overlayfs stacks them (whiteouts, opaque
directories, later layers hiding earlier ones), what each stores that the image no longer
shows, and dive's efficiency score."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from buildbench.measure.archive import EntryKind, FileEntry, LayerInfo

_SYMLINK_HOPS = 40  # as the kernel's limit: a loop gives up instead of recursing forever


@dataclass(frozen=True, slots=True)
class Placed:
    """A non-directory of the final image: the layer that wrote it, the bytes it holds there."""

    layer: int
    entry: FileEntry
    size: int


@dataclass(frozen=True, slots=True)
class Lost:
    """Bytes a layer stores that the final image does not show."""

    layer: int
    path: str
    size: int
    deleted: bool  # by a whiteout or opaque directory above; else overwritten at its path


class Filesystem:
    """The layers stacked as overlayfs stacks them."""

    def __init__(self, layers: list[LayerInfo]) -> None:
        self.files: dict[str, Placed] = {}
        self.lost: list[Lost] = []
        self._real_dirs: dict[str, str] = {}
        killers = _Killers(layers)
        stacked = [copy for layer in layers for copy in self._stack(layer, killers)]
        self.efficiency = _efficiency(stacked)

    def _stack(self, layer: LayerInfo, killers: _Killers) -> list[tuple[FileEntry, bool | None]]:
        """Place a layer's non-directories: each with its fate (see `_Killers.fate`)."""
        fates: list[tuple[FileEntry, bool | None]] = []
        lost_files: dict[str, Lost] = {}
        links: list[FileEntry] = []
        for entry in layer.files:
            if entry.kind in (EntryKind.WHITEOUT, EntryKind.OPAQUE, EntryKind.DIR):
                continue
            deleted = killers.fate(entry, layer.index)
            fates.append((entry, deleted))
            if deleted is not None:
                lost_files[entry.path] = Lost(layer.index, entry.path, entry.size, deleted)
                continue
            self.files[entry.path] = Placed(layer.index, entry, entry.size)
            if entry.kind is EntryKind.HARDLINK:
                links.append(entry)
        # A file's data outlives its path while a hard link to it is still there.
        for link in links:
            target = lost_files.pop(link.link or "", None)
            if target is not None:
                self.files[link.path] = Placed(layer.index, link, target.size)
        self.lost.extend(lost for lost in lost_files.values() if lost.size)
        return fates

    def lookup(self, path: str) -> tuple[str, Placed] | None:
        """The final file at `path`, following symlinked directories (/lib -> usr/lib)."""
        directory, name = posixpath.split(path)
        real = posixpath.join(self._real_dir(directory, 0), name) if directory else name
        placed = self.files.get(real)
        return None if placed is None else (real, placed)

    def _real_dir(self, path: str, hops: int) -> str:
        if not path or hops > _SYMLINK_HOPS:
            return path
        cached = self._real_dirs.get(path)
        if cached is not None:
            return cached
        parent, name = posixpath.split(path)
        real_parent = self._real_dir(parent, hops + 1)
        candidate = posixpath.join(real_parent, name)
        placed = self.files.get(candidate)
        real = candidate
        if placed is not None and placed.entry.kind is EntryKind.SYMLINK and placed.entry.link:
            real = self._real_dir(clean(posixpath.join(real_parent, placed.entry.link)), hops + 1)
        self._real_dirs[path] = real
        return real


def _efficiency(stacked: list[tuple[FileEntry, bool | None]]) -> float:
    """dive's score: over every path, its smallest copy's bytes / all its copies' bytes.

    Unlike dive, which adds a deleted directory's size to both sums (so deleting a directory
    never lowers its score), each file a deletion hides counts as a 0-byte copy.
    """
    smallest: dict[str, int] = {}
    written = 0
    for entry, deleted in stacked:
        written += entry.size
        size = 0 if deleted else entry.size
        smallest[entry.path] = min(smallest.get(entry.path, size), size)
    return sum(smallest.values()) / written if written else 1.0


class _Killers:
    """Where each layer hides what is below it; the highest layer that does, per path."""

    def __init__(self, layers: list[LayerInfo]) -> None:
        self.written: dict[str, int] = {}  # any entry: replaces a non-directory at the path
        self.subtree: dict[str, int] = {}  # a whiteout or non-directory: the path and below
        self.below: dict[str, int] = {}  # an opaque directory: what is below it
        for layer in layers:
            for entry in layer.files:
                if entry.kind is EntryKind.WHITEOUT:
                    self.subtree[entry.path] = layer.index
                elif entry.kind is EntryKind.OPAQUE:
                    self.below[entry.path] = layer.index
                else:
                    self.written[entry.path] = layer.index
                    if entry.kind is not EntryKind.DIR:
                        self.subtree[entry.path] = layer.index

    def fate(self, entry: FileEntry, layer: int) -> bool | None:
        """None if a non-directory survives; True if a layer above deletes it, False if one
        above writes the same path."""
        if self.written.get(entry.path, -1) > layer:
            return False
        if self.subtree.get(entry.path, -1) > layer:
            return True
        for ancestor in _ancestors(entry.path):
            if self.subtree.get(ancestor, -1) > layer or self.below.get(ancestor, -1) > layer:
                return True
        return None


def _ancestors(path: str) -> Iterator[str]:
    end = path.rfind("/")
    while end > 0:
        yield path[:end]
        end = path.rfind("/", 0, end)


def clean(path: str) -> str:
    """`path` relative to /, without `.`, `..` or a leading slash."""
    cleaned = posixpath.normpath("/" + path).lstrip("/")
    return "" if cleaned == "." else cleaned


def final_metadata(layers: list[LayerInfo], fs: Filesystem) -> dict[str, bytes]:
    """The captured metadata files the final image shows: each from the layer that wins."""
    final = {}
    for layer in layers:
        for path, data in layer.metadata.items():
            placed = fs.files.get(path)
            if placed is not None and placed.layer == layer.index:
                final[path] = data
    return final


def claim(fs: Filesystem, paths: Iterable[str], base_layers: int, claimed: set[str]) -> int:
    """Bytes of the final files at `paths` in layers above the base not yet claimed."""
    total = 0
    for path in paths:
        hit = fs.lookup(path)
        if hit is None:
            continue
        real, placed = hit
        if placed.layer >= base_layers and real not in claimed:
            claimed.add(real)
            total += placed.size
    return total
