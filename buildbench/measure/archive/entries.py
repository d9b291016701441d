"""A layer's entries as `tarfile` walks them: the file index (whiteouts and opaque directories
kept as such) and the few small files the contents analysis reads (pip's RECORD and METADATA,
dpkg's status and file lists)."""

from __future__ import annotations

import posixpath
import tarfile

from buildbench.measure.archive.model import Blob, EntryKind, FileEntry

_METADATA_LIMIT = 32 * 1024 * 1024  # a dpkg status or RECORD file is at most a few MB
_METADATA_HEAD = 64 * 1024  # METADATA's Name and Version headers come first
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


def index_entry(layer: tarfile.TarFile, entry: tarfile.TarInfo, blob: Blob) -> None:
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


def _keep_metadata(layer: tarfile.TarFile, entry: tarfile.TarInfo, path: str, blob: Blob) -> None:
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
